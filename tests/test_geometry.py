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


# Rotated crops: the face's roll (counter-clockwise positive as shown) is undone by the crop.

@pytest.mark.parametrize("angle", [-90.0, -45.0, -17.5, 30.0, 45.0, 120.0])
@pytest.mark.parametrize("box", [(10, 20, 50, 50), (-30, -10, 200, 150), (300, 400, 7, 7)])
def test_rotated_points_round_trip(box, angle):
    c = crop_from_box(box, angle_deg=angle)
    pts = np.random.default_rng(1).uniform(-50, 500, (15, 2))
    np.testing.assert_allclose(c.to_image(c.to_crop(pts)), pts, atol=1e-9)
    np.testing.assert_allclose(c.matrix()[:, :2] @ pts.T + c.matrix()[:, 2:], c.to_crop(pts).T, atol=1e-9)


def test_angle_zero_keeps_the_upright_numbers_exactly():
    box = (101.3, 47.9, 83.0, 61.0)
    upright, zero = crop_from_box(box), crop_from_box(box, angle_deg=0.0)
    assert upright == zero
    # the turned formulas at a vanishing angle agree with the upright ones: same convention, same centre
    tiny = crop_from_box(box, angle_deg=1e-12)
    np.testing.assert_allclose(tiny.matrix(), upright.matrix(), atol=1e-9)
    pts = np.array([[0.0, 0.0], [140.0, 80.0], [-3.5, 900.0]])
    np.testing.assert_allclose(tiny.to_crop(pts), upright.to_crop(pts), atol=1e-9)


@pytest.mark.parametrize("angle", [-45.0, -20.0, 15.0, 30.0, 90.0])
@pytest.mark.parametrize("side", [48.0, 150.0, 400.0])
def test_a_drawn_dot_lands_where_the_rotated_crop_mapping_says(side, angle):
    image = np.zeros((600, 800), np.uint8)
    dot = np.array([351.0, 222.0])
    cv2.circle(image, (351, 222), max(2, int(side / 40)), 255, -1)
    crop = CropTransform(dot[0] - 0.4 * side, dot[1] - 0.3 * side, side, angle_deg=angle)
    patch = crop.extract(image)
    assert patch.shape == (96, 96)
    ys, xs = np.nonzero(patch > 100)
    found = np.array([xs.mean(), ys.mean()])
    np.testing.assert_allclose(found, crop.to_crop(dot), atol=1.0)
    # ... and the dot found in the crop maps back onto the drawn one
    np.testing.assert_allclose(crop.to_image(found), dot, atol=1.0 / crop.scale + 0.5)


def _upright_pattern(size: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """A drawn 'face' (two eyes, a mouth bar) upright, and its three feature points."""
    image = np.zeros((size, size), np.uint8)
    points = np.array([[160.0, 170.0], [240.0, 170.0], [200.0, 260.0]])
    for x, y in points[:2]:
        cv2.circle(image, (int(x), int(y)), 12, 255, -1)
    cv2.rectangle(image, (170, 252), (230, 268), 160, -1)
    return image, points


@pytest.mark.parametrize("angle", [-45.0, -30.0, 15.0, 45.0, 80.0])
def test_a_face_turned_by_angle_comes_out_upright_in_the_crop_of_that_angle(angle):
    upright, points = _upright_pattern()
    turn = cv2.getRotationMatrix2D((199.5, 199.5), angle, 1.0)  # counter-clockwise as shown, like a tilted head
    tilted = cv2.warpAffine(upright, turn, (400, 400))
    tilted_points = points @ turn[:, :2].T + turn[:, 2]
    # the eye line rises to the right for a positive angle (y down)
    assert np.sign(tilted_points[0, 1] - tilted_points[1, 1]) == np.sign(angle)
    straight = CropTransform(100, 100, 200)  # where the upright pattern's crop is
    turned = CropTransform(100, 100, 200, angle_deg=angle)  # the same square turned with the face
    np.testing.assert_allclose(turned.to_crop(tilted_points), straight.to_crop(points), atol=1e-9)
    a, b = straight.extract(upright).astype(int), turned.extract(tilted).astype(int)
    assert np.abs(a - b).mean() < 6  # the same upright picture (interpolated twice)
    assert np.abs(a - straight.extract(tilted).astype(int)).mean() > 3 * np.abs(a - b).mean()


def test_the_shrink_first_path_matches_a_plain_warp_for_a_turned_crop():
    rng = np.random.default_rng(5)
    image = cv2.GaussianBlur(rng.integers(0, 255, (900, 1200), dtype=np.uint8), (0, 0), 8)
    crop = CropTransform(300.0, 200.0, 520.0, angle_deg=33.0)
    assert crop.scale < 0.5
    direct = cv2.warpAffine(image, crop.matrix(), (96, 96), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    assert np.abs(crop.extract(image).astype(int) - direct.astype(int)).mean() < 2
    # at the image's corner (the turned square's bounds reach outside), the geometry holds too
    corner = CropTransform(-200.0, -150.0, 520.0, angle_deg=-40.0)
    direct = cv2.warpAffine(image, corner.matrix(), (96, 96), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    assert np.abs(corner.extract(image).astype(int) - direct.astype(int)).mean() < 3


@pytest.mark.parametrize("angle", [0.0, 12.0, -35.0, 60.0])
def test_a_turned_box_is_shifted_down_along_the_face(angle):
    c = crop_from_box((100, 50, 80, 80), margin=1.5, shift_down=0.1, angle_deg=angle)
    assert c.side == pytest.approx(120) and c.angle_deg == angle
    # the crop's centre sits 8 px "below" the box centre in the face's own frame
    box_centre_in_crop = c.to_crop(np.array([139.5, 89.5]))
    np.testing.assert_allclose(box_centre_in_crop, (47.5, 47.5 - 8 * c.scale), atol=1e-9)


def test_corners_are_the_turned_square():
    c = CropTransform(100.0, 100.0, 200.0, angle_deg=90.0)
    corners = c.corners()
    np.testing.assert_allclose(corners.mean(0), c.centre, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(corners[1] - corners[0]), 200.0, atol=1e-9)
    # turned 90 deg counter-clockwise as shown: the face's top edge runs up the image's left side
    np.testing.assert_allclose(corners[0], (99.5, 299.5), atol=1e-9)
    np.testing.assert_allclose(corners[1], (99.5, 99.5), atol=1e-9)
    x0, y0, x1, y1 = CropTransform(0.0, 0.0, 100.0, angle_deg=45.0).bounds()
    assert x1 - x0 == pytest.approx(100 * np.sqrt(2)) and (x0 + x1) / 2 == pytest.approx(50)


@pytest.mark.parametrize("angle", [-45.0, -10.0, 25.0, 89.0])
def test_crop_around_points_recovers_a_turned_crop(angle):
    reference = np.random.default_rng(2).uniform(20, 76, (15, 2))
    truth = CropTransform(120.0, 80.0, 200.0, angle_deg=angle)
    points_px = truth.to_image(reference)
    fitted = crop_around_points(points_px, reference)
    assert (fitted.left, fitted.top, fitted.side, fitted.angle_deg) == pytest.approx((120.0, 80.0, 200.0, angle))
    upright = crop_around_points(points_px, reference, rotate=False)
    assert upright.angle_deg == 0 and upright.side == pytest.approx(200.0)


def test_shift_onto_points_moves_a_turned_crop_along_its_own_axes():
    from core.geometry import shift_onto_points

    reference = np.array([[40.0, 40.0], [56.0, 40.0], [48.0, 60.0]])
    crop = crop_from_box((100, 100, 80, 80), angle_deg=-30.0)
    points = crop.to_image(reference + (20.0, -6.0))
    moved = shift_onto_points(crop, points, reference)
    assert moved.side == crop.side and moved.angle_deg == crop.angle_deg
    np.testing.assert_allclose(moved.to_crop(points), reference, atol=1e-9)
