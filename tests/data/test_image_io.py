"""read_image: every mode Pillow reads decodes to the right pixels (checked against numpy) or is refused by name."""
import numpy as np
import pytest
from PIL import Image

from detrun.data import DataError, read_image
from detrun.data.detection_utils import check_image_size

H, W = 20, 30


def colour_image(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def luma(rgb):
    """Pillow's RGB -> L (ITU-R 601, fixed point, rounded)."""
    r, g, b = (rgb[..., c].astype(np.int64) for c in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


def test_16bit_grey_is_scaled_to_8bit(tmp_path):
    values = np.linspace(0, 65535, H * W).astype(np.uint16).reshape(H, W)
    for name, mode in [("grey16.png", "I;16"), ("grey16.tif", "I;16B")]:
        path = tmp_path / name
        Image.frombytes(mode, (W, H), values.astype(">u2" if mode == "I;16B" else "<u2").tobytes()).save(path)
        with Image.open(path) as img:
            assert img.mode == mode
        rgb = read_image(str(path))
        expected = (values >> 8).astype(np.uint8)
        assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8
        np.testing.assert_array_equal(rgb, np.repeat(expected[..., None], 3, axis=2))
        assert abs(rgb.mean() - 127.5) < 1  # not all white (Pillow's own convert clips at 255)
        np.testing.assert_array_equal(read_image(str(path), "L"), expected[..., None])


def test_palette_goes_through_the_palette(tmp_path):
    indices = np.random.default_rng(1).integers(0, 16, (H, W), dtype=np.uint8)
    palette = np.random.default_rng(2).integers(0, 256, (16, 3), dtype=np.uint8)
    img = Image.fromarray(indices, mode="L").convert("P")
    img.putpalette(palette.reshape(-1).tolist())
    img.info["transparency"] = 3  # a transparent palette entry keeps its colour: alpha is dropped
    img.save(tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as check:
        assert check.mode == "P"
    np.testing.assert_array_equal(read_image(str(tmp_path / "p.png")), palette[indices])
    np.testing.assert_array_equal(read_image(str(tmp_path / "p.png"), "BGR"), palette[indices][..., ::-1])
    np.testing.assert_array_equal(read_image(str(tmp_path / "p.png"), "L")[..., 0], luma(palette[indices]))


def test_cmyk_to_rgb(tmp_path):
    cmyk = np.random.default_rng(3).integers(0, 256, (H, W, 4), dtype=np.uint8)
    Image.fromarray(cmyk, mode="CMYK").save(tmp_path / "c.tif")
    c, m, y, k = (cmyk[..., i].astype(np.float64) for i in range(4))
    expected = np.stack([(255 - v) * (255 - k) / 255 for v in (c, m, y)], axis=2)
    assert np.abs(read_image(str(tmp_path / "c.tif")).astype(int) - expected).max() <= 1


@pytest.mark.parametrize("mode", ["RGBA", "LA", "L", "1"])
def test_alpha_dropped_and_grey_replicated(tmp_path, mode):
    rgb = colour_image()
    alpha = np.random.default_rng(4).integers(0, 256, (H, W), dtype=np.uint8)
    grey = luma(rgb)
    arrays = {"RGBA": (np.dstack([rgb, alpha]), rgb), "LA": (np.dstack([grey, alpha]), grey[..., None].repeat(3, 2)),
              "L": (grey, grey[..., None].repeat(3, 2))}
    if mode == "1":
        Image.fromarray(grey > 127).save(tmp_path / "x.png")
        expected = np.where(grey > 127, 255, 0).astype(np.uint8)[..., None].repeat(3, 2)
    else:
        stored, expected = arrays[mode]
        Image.fromarray(stored, mode=mode).save(tmp_path / "x.png")
    with Image.open(tmp_path / "x.png") as img:
        assert img.mode == mode
    np.testing.assert_array_equal(read_image(str(tmp_path / "x.png")), expected)
    np.testing.assert_array_equal(read_image(str(tmp_path / "x.png"), "L"), luma(expected)[..., None])


def test_rgb_to_grey_is_luma(tmp_path):
    rgb = colour_image()
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(read_image(str(tmp_path / "rgb.png"), "L"), luma(rgb)[..., None])


@pytest.mark.parametrize("mode, dtype", [("I", np.int32), ("F", np.float32)])
def test_32bit_images_are_refused_by_name(tmp_path, mode, dtype):
    Image.fromarray(np.arange(H * W, dtype=dtype).reshape(H, W)).save(tmp_path / "deep.tif")
    with pytest.raises(DataError, match=rf"deep\.tif.*image id 5.*Pillow mode '{mode}'"):
        read_image(str(tmp_path / "deep.tif"), image_id=5)


def test_exif_rotation_is_applied_and_named_when_sizes_disagree(tmp_path):
    rgb = colour_image()  # stored 30 wide, 20 high
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90° clockwise
    Image.fromarray(rgb).save(tmp_path / "phone.png", exif=exif)
    decoded = read_image(str(tmp_path / "phone.png"))
    np.testing.assert_array_equal(decoded, np.rot90(rgb, -1))
    check_image_size({"file_name": str(tmp_path / "phone.png"), "height": W, "width": H}, decoded)  # rotated size: fine
    stored_size = {"file_name": str(tmp_path / "phone.png"), "image_id": 3, "height": H, "width": W}
    with pytest.raises(DataError, match=r"phone\.png.*stored as 30x20.*EXIF orientation tag \(274\) is 6.*rotated to 20x30"):
        check_image_size(stored_size, decoded)
    # a plain mismatch says nothing about EXIF
    Image.fromarray(rgb).save(tmp_path / "plain.png")
    with pytest.raises(DataError, match="is 30x20 pixels but its annotation says 31x20") as info:
        check_image_size({"file_name": str(tmp_path / "plain.png"), "height": H, "width": 31}, rgb)
    assert "EXIF" not in str(info.value)
