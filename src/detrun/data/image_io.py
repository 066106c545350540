"""Decoding image files to uint8 arrays, and checking them against their record.

Every mode Pillow reads either decodes to the right pixels or is refused with the file named:
a silently white or wrongly scaled image trains a model on nothing.
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .problems import DataError

IMAGE_FORMATS = ("RGB", "BGR", "L")

# 16-bit grey, in Pillow's names for its byte orders
MODES_16BIT = ("I;16", "I;16L", "I;16B", "I;16N")
# Pillow converts these to RGB (and through RGB to L) exactly; alpha, where there is one, is dropped.
MODES_8BIT = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")
EXIF_ORIENTATION = 0x0112  # EXIF tag 274
ROTATING_ORIENTATIONS = {5: "transposed", 6: "rotated 90° clockwise", 7: "transversed", 8: "rotated 90° counter-clockwise"}


def read_image(file_name: str, image_format: str = "RGB", *, image_id=None) -> np.ndarray:
    """Read an image file as uint8 [H, W, 3] (RGB or BGR) or [H, W, 1] ("L"), EXIF orientation applied.

    Modes: grey ("1", "L", 16-bit "I;16") is replicated to 3 channels for RGB/BGR; 16-bit values
    become 8-bit by ``value >> 8`` (the high byte, as Pillow itself decodes 16-bit colour PNGs,
    so a grey and a colour 16-bit image agree); palette images ("P", "PA") go through their
    palette; CMYK, YCbCr, LAB and HSV are converted to RGB; alpha ("LA", "PA", "RGBA") is dropped,
    not composited, so transparent pixels keep whatever colour they store. "L" is the ITU-R 601
    luma of the RGB image. 32-bit integer ("I") and float ("F") images are refused: their value
    range is unknown, so no scaling to 8 bits is right for all of them.

    Raises DataError naming the file (and image id) if it is missing, can't be decoded, or has
    a refused mode.
    """
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {IMAGE_FORMATS}, got '{image_format}'")
    which = _which(file_name, image_id)
    if not os.path.isfile(file_name):
        raise DataError(f"{which} does not exist; check the data set's image folder (image_root)")
    try:
        with Image.open(file_name) as img:
            return decode_image(img, image_format, which=which)
    except DataError:  # a refused mode, already explained (DataError is a ValueError)
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{which} can't be decoded ({type(exc).__name__}: {exc}); the file is corrupt or not an image") from exc


def decode_image(img: Image.Image, image_format: str = "RGB", *, which: str = "the image") -> np.ndarray:
    """The pixels of an opened PIL image as `read_image` returns a file's: uint8 [H, W, 3] (RGB
    or BGR) or [H, W, 1] ("L"), EXIF orientation applied, modes converted or refused (DataError
    naming `which`) as `read_image` describes."""
    arr = _decode(ImageOps.exif_transpose(img), image_format, which)
    if image_format == "BGR":
        arr = arr[:, :, ::-1]
    return arr[:, :, None] if arr.ndim == 2 else arr


def _decode(img: Image.Image, image_format: str, which: str) -> np.ndarray:
    """Pixels of an opened image as uint8 [H, W] ("L") or [H, W, 3] (RGB)."""
    if img.mode in MODES_16BIT:
        # np.asarray honours the byte order in the mode name; >> 8 keeps the high byte
        img = Image.fromarray((np.asarray(img).astype(np.uint16) >> 8).astype(np.uint8))
    elif img.mode in ("I", "F"):
        kind = "integer" if img.mode == "I" else "float"
        raise DataError(f"{which} has 32-bit {kind} pixels (Pillow mode '{img.mode}'): no one scaling to 8 bits suits "
                        "every value range, so detrun refuses it; convert the file to 8-bit (or 16-bit grey) PNG or JPEG")
    elif img.mode not in MODES_8BIT:
        raise DataError(f"{which} has Pillow mode '{img.mode}', which detrun does not convert to RGB; convert the file "
                        "to 8-bit PNG or JPEG")
    if image_format == "L":
        # colour modes go through RGB: Pillow has no direct LAB -> L, and this keeps one luma formula
        grey = img.convert("L") if img.mode in ("1", "L", "LA") else img.convert("RGB").convert("L")
        return np.asarray(grey)
    return np.asarray(img.convert("RGB"))


def _which(file_name: str, image_id) -> str:
    return f"image '{file_name}'" + (f" (image id {image_id})" if image_id is not None else "")


def check_image_size(record: dict, image: np.ndarray) -> None:
    """Raise DataError if the decoded image's size differs from the record's height/width.

    When the record has the size of the stored pixels but the EXIF orientation rotated them on
    decoding, the error says so (the annotations were likely made without applying it).
    """
    h, w = image.shape[:2]
    expected = (record.get("height", h), record.get("width", w))
    if expected == (h, w):
        return
    which = _which(record["file_name"], record.get("image_id"))
    message = (f"{which} is {w}x{h} pixels but its annotation says {expected[1]}x{expected[0]}; "
               "the annotation file and images don't match")
    with Image.open(record["file_name"]) as img:
        orientation, (stored_w, stored_h) = img.getexif().get(EXIF_ORIENTATION, 1), img.size
    if orientation in ROTATING_ORIENTATIONS and (stored_h, stored_w) == expected:
        message = (f"{which} is stored as {stored_w}x{stored_h} pixels, as its annotation says, but its EXIF "
                   f"orientation tag ({EXIF_ORIENTATION}) is {orientation} ({ROTATING_ORIENTATIONS[orientation]}), "
                   f"so it decodes rotated to {w}x{h}. If the annotations were drawn on the stored pixels, remove the "
                   "tag (e.g. `exiftool -Orientation= FILE`); if they were drawn on the rotated image, fix the "
                   "record's height/width")
    raise DataError(message)


# Label-map modes whose pixel values are the labels themselves (a palette image's indices, not its colours).
LABEL_MAP_MODES = ("L", "P", "I;16", "I;16L", "I;16B", "I", "1")


def read_label_map(file_name: str, *, image_id=None) -> np.ndarray:
    """Read a semantic label map (one integer class per pixel, 255 usually "ignore") as int64 [H, W].

    Grey ("L", 16/32-bit) and palette ("P") PNGs are read as stored: a palette image gives its
    indices, which is how label PNGs such as Pascal VOC's are written (Detectron2 reads them
    through Pillow's "L" conversion, which turns palette indices into colour lumas). Colour
    images are refused: their labels would need a colour table.
    """
    which = f"label map '{file_name}'" + (f" (image id {image_id})" if image_id is not None else "")
    if not os.path.isfile(file_name):
        raise DataError(f"{which} does not exist; check the data set's sem_seg_file_name entries (sem_seg_root)")
    try:
        with Image.open(file_name) as img:
            if img.mode not in LABEL_MAP_MODES:
                raise DataError(f"{which} has Pillow mode '{img.mode}'; a label map must be a one-channel (grey or "
                                "palette) image whose pixel values are class indices")
            return np.asarray(img).astype(np.int64)
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{which} can't be decoded ({type(exc).__name__}: {exc})") from exc
