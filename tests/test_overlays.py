import numpy as np
import pytest

from core import artwork, overlays
from core.schema import INDEX


def _face_keypoints(cx=200.0, cy=200.0, s=1.0) -> np.ndarray:
    """A plausible frontal face layout (image px) around (cx, cy)."""
    layout = {
        "left_eye_center": (30, -20), "right_eye_center": (-30, -20),
        "left_eye_inner_corner": (15, -20), "left_eye_outer_corner": (45, -20),
        "right_eye_inner_corner": (-15, -20), "right_eye_outer_corner": (-45, -20),
        "left_eyebrow_inner_end": (12, -40), "left_eyebrow_outer_end": (55, -42),
        "right_eyebrow_inner_end": (-12, -40), "right_eyebrow_outer_end": (-55, -42),
        "nose_tip": (0, 15), "mouth_left_corner": (25, 45), "mouth_right_corner": (-25, 45),
        "mouth_center_top_lip": (0, 38), "mouth_center_bottom_lip": (0, 55),
    }
    k = np.zeros((15, 2))
    for name, (dx, dy) in layout.items():
        k[INDEX[name]] = (cx + s * dx, cy + s * dy)
    return k


@pytest.mark.parametrize("make", [artwork.sunglasses, artwork.moustache, artwork.hat])
def test_artwork_is_rgba_with_transparent_background_and_opaque_paint(make):
    piece = make()
    assert piece.rgba.dtype == np.uint8 and piece.rgba.shape[2] == 4
    alpha = piece.rgba[..., 3]
    assert (alpha == 0).mean() > 0.2 and (alpha > 200).mean() > 0.1
    h, w = alpha.shape
    for x, y in piece.anchors.values():
        assert 0 <= x <= w and 0 <= y <= h


def test_sunglasses_cover_the_eyes_and_leave_the_mouth():
    image = np.full((400, 400, 3), 255, np.uint8)
    k = _face_keypoints()
    out = overlays.add_sunglasses(image.copy(), k)
    for name in ("left_eye_center", "right_eye_center"):
        x, y = k[INDEX[name]].round().astype(int)
        assert out[y, x].mean() < 120, name  # dark lens over the eye
    x, y = k[INDEX["mouth_center_bottom_lip"]].round().astype(int)
    assert (out[y, x] == 255).all()


def test_sunglasses_rotate_with_the_face():
    image = np.full((400, 400, 3), 255, np.uint8)
    k = _face_keypoints()
    angle = np.deg2rad(30)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    tilted = (k - 200) @ rot.T + 200
    out = overlays.add_sunglasses(image.copy(), tilted)
    for name in ("left_eye_center", "right_eye_center"):
        x, y = tilted[INDEX[name]].round().astype(int)
        assert out[y, x].mean() < 120


def test_moustache_sits_between_nose_and_lip_and_hat_above_brows():
    k = _face_keypoints()
    out = overlays.add_moustache(np.full((400, 400, 3), 255, np.uint8), k)
    nose, lip = k[INDEX["nose_tip"]], k[INDEX["mouth_center_top_lip"]]
    x, y = ((nose + lip) / 2).round().astype(int)
    assert out[y + 3, x].mean() < 200
    out = overlays.add_hat(np.full((400, 400, 3), 255, np.uint8), k)
    top = int(k[:, 1].min())
    assert out[:top].mean() < 250 and (out[int(k[INDEX["nose_tip"], 1])] == 255).all()


def _ellipse_mask(shape, box, grow=1.0):
    (cx, cy), (ax, ay) = overlays.face_ellipse(box)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return ((xx - cx) / (ax * grow)) ** 2 + ((yy - cy) / (ay * grow)) ** 2 <= 1


@pytest.mark.parametrize("method", ["blur", "pixelate"])
def test_hiding_a_face_changes_its_ellipse_and_never_its_neighbour(method):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (240, 360, 3), dtype=np.uint8)
    face, neighbour = (60, 60, 100, 110), (150, 70, 100, 110)  # side by side, boxes 10 px apart
    out = overlays.hide_faces(image.copy(), [face, neighbour], [0], method)
    inner = _ellipse_mask(image.shape, face, 0.9)
    assert out[inner].std() < 0.5 * image[inner].std()  # the face itself is hidden, right to its outline
    assert (out[_ellipse_mask(image.shape, neighbour)] == image[_ellipse_mask(image.shape, neighbour)]).all()
    beyond = ~_ellipse_mask(image.shape, face, 1.5)  # past the feather: untouched (no hard rectangle)
    assert (out[beyond] == image[beyond]).all()
    both = overlays.hide_faces(image.copy(), [face, neighbour], [0, 1], method)
    assert both[_ellipse_mask(image.shape, neighbour, 0.9)].std() < 0.5 * image[inner].std()


@pytest.mark.parametrize("scale", [0.15, 0.3, 0.6, 1.0, 2.5, 6.0])
@pytest.mark.parametrize("where", [(200.0, 200.0), (8.0, 8.0), (392.0, 200.0)])
def test_keypoint_numbers_never_overlap_and_stay_inside_the_image(scale, where):
    k = _face_keypoints(*where, s=scale)
    boxes = overlays.label_boxes(k, (400, 400))
    radius = overlays._dot_radius(k)
    dots = [(x - radius - 1, y - radius - 1, x + radius + 1, y + radius + 1) for x, y in k]
    placed = list(boxes.values())
    for n, box in enumerate(placed):
        assert 0 <= box[0] < box[2] <= 400 and 0 <= box[1] < box[3] <= 400
        assert not any(overlays._overlap(box, other) for other in placed[n + 1:] + dots)
    if scale in (1.0, 2.5) and where == (200.0, 200.0):
        assert len(boxes) == 15  # a face of ordinary size gets every number
    out = overlays.draw_keypoints(np.zeros((400, 400, 3), np.uint8), k, labels=True)
    assert out.any()


def test_overlays_near_the_border_do_not_crash():
    k = _face_keypoints(cx=5, cy=5, s=2)
    for fn in (overlays.add_sunglasses, overlays.add_moustache, overlays.add_hat):
        image = np.zeros((50, 50, 3), np.uint8)
        assert fn(image, k) is image and image.shape == (50, 50, 3)  # drawn in place, never resized
    # a face cut by the top-left corner still gets the part of its moustache that is in the image
    near = _face_keypoints(cx=5, cy=5, s=1)
    out = overlays.add_moustache(np.full((50, 50, 3), 255, np.uint8), near)
    assert (out != 255).any(axis=2).sum() > 20
    # a box hanging off the image hides the part of its face ellipse (and feather) inside the image, nothing else
    noise = np.random.default_rng(0).integers(0, 256, (50, 50, 3), dtype=np.uint8)
    blurred = overlays.hide_faces(noise.copy(), [(-20, -20, 30, 30)], [0], "blur")
    (cx, cy), (ax, ay) = overlays.face_ellipse((-20, -20, 30, 30))
    beyond = int(np.ceil(1.5 * max(cy + ay, cx + ax)))  # the ellipse ends at 16 px, its feather a few px later
    assert (blurred[beyond:] == noise[beyond:]).all() and (blurred[:, beyond:] == noise[:, beyond:]).all()
    assert blurred[:5, :5].std() < noise[:5, :5].std() * 0.6
    drawn = overlays.draw_keypoints(np.zeros((50, 50, 3), np.uint8), k, labels=True)
    assert drawn.any()
    k[:5] = np.nan  # missing labels (Kaggle rows) are skipped, not drawn at (0, 0)
    drawn = overlays.draw_keypoints(np.zeros((50, 50, 3), np.uint8), k, labels=True)
    assert drawn.any() and not drawn[:3, :3].any()
    assert not overlays.draw_keypoints(np.zeros((50, 50, 3), np.uint8), np.full((15, 2), np.nan)).any()


def test_face_numbers_and_scores_stay_readable_on_a_large_photo_shown_small():
    photo = np.full((3000, 4000, 3), 235, np.uint8)
    overlays.draw_face_number(photo, (3950, 5, 40, 40), 3, 0.47)  # at the corner: the tag moves inside
    dark = np.argwhere(photo.max(axis=2) < 200)
    (y0, _), (y1, x1) = dark.min(axis=0), dark.max(axis=0)
    assert x1 < 4000 and y0 >= 0 and (y1 - y0) / 3000 * 460 > 8  # over 8 px tall at 460 px wide
    rejected = overlays.draw_rejected_box(np.full((3000, 4000, 3), 235, np.uint8), (1000, 1000, 200, 200), 0.12)
    assert (rejected[800:1000, 1000:1400].max(axis=2) < 60).sum() > 2000  # the score's dark tag
    noted = overlays.draw_rejected_box(np.full((3000, 4000, 3), 235, np.uint8), (1000, 1000, 200, 200), 0.12,
                                       note="mirror")

    def tag_width(image: np.ndarray) -> int:
        columns = np.flatnonzero((image[800:990].max(axis=2) < 60).any(axis=0))
        return int(columns.max() - columns.min())

    assert tag_width(noted) > 1.5 * tag_width(rejected)  # why it was refused, beside the score


def test_a_close_up_draws_numbers_big_enough_to_read():
    k = _face_keypoints(cx=1500.0, cy=1000.0, s=1.3)  # a face about 200 px wide in a 3000 px photo
    photo = np.full((2000, 3000, 3), 128, np.uint8)
    close = overlays.face_closeup(photo, (1400, 900, 200, 200), k, width=360)
    assert close.shape[1] == 360
    scaled = (k - (1350, 850)) * 360 / 300
    boxes = overlays.label_boxes(scaled, (360, close.shape[0]))
    assert len(boxes) >= 12 and min(y1 - y0 for _, y0, _, y1 in boxes.values()) >= 12  # most numbers, 12+ px tall
    greens = (close[..., 1] > 200) & (close[..., 0] < 80)
    assert greens.sum() > 1000  # dots and numbers drawn at close-up size
