"""core.geometry at its edges: boxes with no size, and large crops (shrunk first) lying mostly or wholly off the image."""
import numpy as np
import pytest

from core.geometry import CropTransform, crop_from_box


@pytest.mark.parametrize("box", [(10, 10, 0, 20), (10, 10, 20, -1), (0, 0, 0, 0)])
def test_a_box_without_a_size_is_refused(box):
    with pytest.raises(ValueError, match="positive size"):
        crop_from_box(box)


def _edges_image() -> np.ndarray:
    """100x100 black, with a right band of 200 and a bottom band of 60 (their corner 60), each 20 px wide: wider
    than one pixel of a crop shrunk 4x, so shrinking keeps their value."""
    image = np.zeros((100, 100), np.uint8)
    image[:, 80:] = 200
    image[80:, :] = 60
    return image


def test_a_large_crop_right_of_the_image_repeats_its_right_edge():
    crop = CropTransform(left=500, top=0, side=90, size=96)  # scale 1.07: the plain warp
    big = CropTransform(left=500, top=-20, side=400, size=96)  # scale 0.24: shrunk first, then warped
    assert big.scale < 0.5 < crop.scale
    for c in (crop, big):
        out = c.extract(_edges_image())
        assert out.shape == (96, 96) and out.dtype == np.uint8
        rows_inside = out[: int(c.to_crop((0, 75))[1])]  # crop rows beside image rows 0..75
        assert np.abs(rows_inside.astype(int) - 200).max() <= 2


def test_a_large_crop_below_and_beyond_the_corner_repeats_the_corner_pixel():
    out = CropTransform(left=300, top=300, side=500, size=96).extract(_edges_image())
    assert out.shape == (96, 96) and np.abs(out.astype(int) - 60).max() <= 1


def test_a_large_crop_below_the_image_repeats_its_bottom_row():
    out = CropTransform(left=-100, top=400, side=300, size=96).extract(_edges_image())
    columns_inside = out[:, int(np.ceil(CropTransform(-100, 400, 300).to_crop((0, 0))[0])) + 1:
                         int(CropTransform(-100, 400, 300).to_crop((78, 0))[0])]
    assert np.abs(columns_inside.astype(int) - 60).max() <= 1
