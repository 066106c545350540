"""The evaluator node: COCO AP on the validation set.

The engine adds ``output_dir`` at instantiation (``instantiate(cfg.evaluator, output_dir=...)``);
change the data set or backend by assignment or on the command line
(``evaluator.dataset_name=my_val evaluator.backend=pycocotools``). A recipe may list several
evaluators (``evaluator = [L(...)(...), ...]``); their results merge into one table.
"""
from omegaconf import OmegaConf

from detrun.config import L
from detrun.evaluation import COCOEvaluator, COCOPanopticEvaluator, SemSegEvaluator

evaluator = L(COCOEvaluator)(dataset_name="shapes_val", backend="auto")


def panoptic_evaluators(dataset_name: str) -> list:
    """The evaluator list of a panoptic recipe (Detectron2's for coco_panoptic_separated): box and
    mask AP, mIoU of the semantic head ("things" + stuff classes) and PQ, all on `dataset_name`."""
    return OmegaConf.create([  # a ListConfig: recipes collect config nodes, not Python lists
        L(COCOEvaluator)(dataset_name=dataset_name, backend="auto"),
        L(SemSegEvaluator)(dataset_name=dataset_name),
        L(COCOPanopticEvaluator)(dataset_name=dataset_name),
    ])
