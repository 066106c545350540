"""COCO's 17 person keypoints: names, left/right pairs, skeleton and OKS sigmas (the COCO API's)."""

KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)

KEYPOINT_FLIP_MAP = tuple((f"left_{part}", f"right_{part}")
                          for part in ("eye", "ear", "shoulder", "elbow", "wrist", "hip", "knee", "ankle"))

# Pairs drawn as the skeleton, with an RGB colour each (Detectron2's keypoint_connection_rules format).
KEYPOINT_CONNECTION_RULES = (
    ("left_ear", "left_eye", (102, 204, 255)), ("right_ear", "right_eye", (51, 153, 255)),
    ("left_eye", "nose", (102, 0, 204)), ("nose", "right_eye", (51, 102, 255)),
    ("left_shoulder", "right_shoulder", (255, 128, 0)), ("left_shoulder", "left_elbow", (153, 255, 204)),
    ("right_shoulder", "right_elbow", (128, 229, 255)), ("left_elbow", "left_wrist", (153, 255, 153)),
    ("right_elbow", "right_wrist", (102, 255, 224)), ("left_hip", "right_hip", (255, 102, 0)),
    ("left_hip", "left_knee", (255, 255, 77)), ("right_hip", "right_knee", (153, 255, 204)),
    ("left_knee", "left_ankle", (191, 255, 128)), ("right_knee", "right_ankle", (255, 195, 77)),
)

# pycocotools' per-keypoint OKS sigmas, in KEYPOINT_NAMES order.
KEYPOINT_OKS_SIGMAS = [s / 10.0 for s in (.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62,
                                          1.07, 1.07, .87, .87, .89, .89)]

METADATA = {
    "keypoint_names": list(KEYPOINT_NAMES),
    "keypoint_flip_map": [list(pair) for pair in KEYPOINT_FLIP_MAP],
    "keypoint_connection_rules": [[a, b, list(color)] for a, b, color in KEYPOINT_CONNECTION_RULES],
    "keypoint_oks_sigmas": KEYPOINT_OKS_SIGMAS,
}
