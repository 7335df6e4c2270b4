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


def test_blur_and_pixelate_change_only_the_box():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)
    box = (50, 60, 80, 70)
    for fn in (overlays.blur_region, overlays.pixelate_region):
        out = fn(image.copy(), box)
        inside, outside = out[60:130, 50:130], out[:60]
        assert (outside == image[:60]).all()
        assert inside.std() < image[60:130, 50:130].std() * 0.6
    pix = overlays.pixelate_region(image.copy(), box, blocks=10)
    assert len(np.unique(pix[60:130, 50:130].reshape(-1, 3), axis=0)) <= 100


def test_overlays_near_the_border_do_not_crash():
    k = _face_keypoints(cx=5, cy=5, s=2)
    for fn in (overlays.add_sunglasses, overlays.add_moustache, overlays.add_hat):
        image = np.zeros((50, 50, 3), np.uint8)
        assert fn(image, k) is image and image.shape == (50, 50, 3)  # drawn in place, never resized
    # a face cut by the top-left corner still gets the part of its moustache that is in the image
    near = _face_keypoints(cx=5, cy=5, s=1)
    out = overlays.add_moustache(np.full((50, 50, 3), 255, np.uint8), near)
    assert (out != 255).any(axis=2).sum() > 20
    # a box hanging off the image blurs only the part inside it
    noise = np.random.default_rng(0).integers(0, 256, (50, 50, 3), dtype=np.uint8)
    blurred = overlays.blur_region(noise.copy(), (-20, -20, 30, 30))
    assert (blurred[10:] == noise[10:]).all() and (blurred[:, 10:] == noise[:, 10:]).all()
    assert blurred[:10, :10].std() < noise[:10, :10].std() * 0.6
    drawn = overlays.draw_keypoints(np.zeros((50, 50, 3), np.uint8), k, labels=True)
    assert drawn.any()
    k[:5] = np.nan  # missing labels (Kaggle rows) are skipped, not drawn at (0, 0)
    drawn = overlays.draw_keypoints(np.zeros((50, 50, 3), np.uint8), k, labels=True)
    assert drawn.any() and not drawn[:3, :3].any()
    assert not overlays.draw_keypoints(np.zeros((50, 50, 3), np.uint8), np.full((15, 2), np.nan)).any()
