import cv2
import numpy as np
import pytest

from core.schema import INDEX
from trainer.augment import NO_AUGMENTATION, AugmentConfig, affine_matrix, apply_affine, augment_batch, flip


def _dot_image(points: np.ndarray) -> list[np.ndarray]:
    """One image per point with a single bright dot on it, so each point can be found after a warp."""
    out = []
    for x, y in points:
        img = np.zeros((96, 96), np.uint8)
        cv2.circle(img, (int(round(x)), int(round(y))), 2, 255, -1)
        out.append(img)
    return out


def _centroid(img: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(img > 80)
    w = img[ys, xs].astype(float)
    return np.array([(xs * w).sum() / w.sum(), (ys * w).sum() / w.sum()])


def test_flip_moves_dots_where_keypoints_say_and_swaps_names():
    k = np.full((15, 2), 48.0)
    k[INDEX["left_eye_center"]] = (70, 30)
    k[INDEX["right_eye_center"]] = (25, 32)
    img = _dot_image(k[[INDEX["left_eye_center"]]])[0]
    flipped_img, flipped_k = flip(img, k)
    # the dot that was the left eye is now where the flipped *right* eye is
    np.testing.assert_allclose(_centroid(flipped_img), flipped_k[INDEX["right_eye_center"]], atol=0.5)
    assert flipped_k[INDEX["left_eye_center"]][0] > flipped_k[INDEX["right_eye_center"]][0]


@pytest.mark.parametrize("angle, scale, shift", [(20, 1.0, (0, 0)), (-13, 0.85, (3, -2)), (0, 1.15, (-4, 5))])
def test_affine_moves_dots_where_keypoints_say(angle, scale, shift):
    k = np.array([[30, 30], [65, 40], [48, 70]], np.float64)
    m = affine_matrix(angle, scale, shift)
    for img, point in zip(_dot_image(k), k):
        warped, moved = apply_affine(img, point[None], m)
        np.testing.assert_allclose(_centroid(warped), moved[0], atol=0.6)


def test_random_batch_keeps_points_inside_and_nan_missing():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (64, 96, 96), dtype=np.uint8)
    k = rng.uniform(10, 86, (64, 15, 2)).astype(np.float32)
    k[0, 3] = np.nan
    out_img, out_k = augment_batch(images, k, rng, AugmentConfig(max_rotation_deg=30, scale_range=(0.8, 1.2)))
    assert out_img.shape == images.shape and out_img.dtype == np.uint8
    missing = np.flatnonzero(np.isnan(out_k[0, :, 0]))
    assert list(missing) in ([3], [5])  # left_eye_outer_corner, or its right twin after a flip
    assert np.isnan(out_k).sum() == 2
    finite = out_k[~np.isnan(out_k)]
    assert finite.min() >= 0 and finite.max() <= 95
    assert not np.allclose(out_k[1:], k[1:])  # something happened


def test_no_augmentation_is_identity():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (4, 96, 96), dtype=np.uint8)
    k = rng.uniform(10, 86, (4, 15, 2)).astype(np.float32)
    out_img, out_k = augment_batch(images, k, rng, NO_AUGMENTATION)
    assert (out_img == images).all() and np.allclose(out_k, k)
