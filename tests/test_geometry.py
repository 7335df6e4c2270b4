import cv2
import numpy as np
import pytest

from core.geometry import CropTransform, crop_around_points, crop_from_box


def test_crop_from_box_is_square_grown_and_shifted_down():
    c = crop_from_box((100, 50, 80, 60), margin=1.5, shift_down=0.1)
    assert c.side == pytest.approx(120)
    assert c.left + c.side / 2 == pytest.approx(140)
    assert c.top + c.side / 2 == pytest.approx(80 + 8)


@pytest.mark.parametrize("box", [(10, 20, 50, 50), (-30, -10, 200, 150), (300, 400, 7, 7)])
def test_points_round_trip(box):
    c = crop_from_box(box)
    pts = np.random.default_rng(1).uniform(-50, 500, (15, 2))
    np.testing.assert_allclose(c.to_image(c.to_crop(pts)), pts, atol=1e-9)
    np.testing.assert_allclose(c.matrix()[:, :2] @ pts.T + c.matrix()[:, 2:], c.to_crop(pts).T, atol=1e-9)


@pytest.mark.parametrize("side", [48.0, 96.0, 150.0, 400.0])
def test_a_drawn_dot_lands_where_the_crop_mapping_says(side):
    image = np.zeros((600, 800), np.uint8)
    dot = np.array([351.0, 222.0])
    cv2.circle(image, (351, 222), max(2, int(side / 40)), 255, -1)
    crop = CropTransform(dot[0] - 0.4 * side, dot[1] - 0.3 * side, side)
    patch = crop.extract(image)
    assert patch.shape == (96, 96)
    ys, xs = np.nonzero(patch > 100)
    found = np.array([xs.mean(), ys.mean()])
    np.testing.assert_allclose(found, crop.to_crop(dot), atol=1.0)


def test_crop_beyond_the_border_keeps_its_geometry():
    image = np.full((100, 100), 50, np.uint8)
    image[40:60, 0:10] = 255  # a bright bar on the left edge
    crop = crop_from_box((-40, 20, 80, 80), margin=1.0, shift_down=0.0)
    patch = crop.extract(image)
    bar = crop.to_crop(np.array([[5.0, 50.0]]))[0]
    assert patch[int(bar[1]), int(bar[0])] == 255


def test_crop_around_points_inverts_a_known_crop():
    reference = np.random.default_rng(2).uniform(20, 76, (15, 2))
    truth = CropTransform(120.0, 80.0, 200.0)
    points_px = truth.to_image(reference)
    fitted = crop_around_points(points_px, reference)
    assert (fitted.left, fitted.top, fitted.side) == pytest.approx((120.0, 80.0, 200.0))


def test_shift_onto_points_moves_the_crop_not_its_size():
    from core.geometry import moved_px, offset_from_reference, shift_onto_points

    reference = np.array([[40.0, 40.0], [56.0, 40.0], [48.0, 60.0]])
    crop = crop_from_box((100, 100, 80, 80))
    points = crop.to_image(reference + (20.0, -6.0))  # the face sits 20 px right, 6 px up in the crop
    np.testing.assert_allclose(offset_from_reference(crop, points, reference), (20.0, -6.0), atol=1e-9)
    moved = shift_onto_points(crop, points, reference)
    assert moved.side == crop.side
    np.testing.assert_allclose(moved.to_crop(points), reference, atol=1e-9)
    assert moved_px(crop, moved) == pytest.approx(np.hypot(20.0, 6.0))
