"""Augmentation: horizontal flip with the schema's left/right swap, and rotation + scaling +
shift through one cv2 affine matrix applied to image and keypoints alike; then lighting, blur and
occlusion, which change pixels only (against learning identities from a few people's clean frames).

Keypoints pushed out of the crop: a random transform that would move any labelled point outside
the 96x96 frame (less `keep_inside_px`) is redrawn, up to `retries` times, then skipped (the
sample stays unrotated). So targets never ask the model for points it cannot see. Keypoints may be the
15 Kaggle points followed by the face's 68 iBUG points (trainer.points68): all move with the same
flip (each set permuted by its own mirror map) and matrix, and only the 15 decide a redraw. The pixels the
transform brings in from outside the crop repeat the border (BORDER_REPLICATE), like
core.geometry does for faces at the image edge.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from core.schema import CROP_SIZE, NUM_KEYPOINTS, flip_keypoints

CENTRE = ((CROP_SIZE - 1) / 2, (CROP_SIZE - 1) / 2)


@dataclass(frozen=True)
class AugmentConfig:
    """Every knob of the augmentation; the defaults are the original recipe's (ROBUST_AUGMENTATION is the
    studio preset's, trainer.presets; a model's card records the values it was trained with)."""

    flip_probability: float = 0.5
    max_rotation_deg: float = 15.0
    scale_range: tuple[float, float] = (0.9, 1.1)
    max_shift_fraction: float = 0.05  # of the crop side, mimics detector jitter
    brightness: float = 0.15  # +- fraction of full range
    contrast: float = 0.2  # multiply by 1 +- this
    keep_inside_px: float = 1.0
    retries: int = 5
    blur_probability: float = 0.0  # Gaussian blur (out-of-focus, motion, low resolution webcams)
    max_blur_sigma: float = 1.5  # px
    occlusion_probability: float = 0.0  # one rectangle of flat grey (hands, microphones, glasses' glare)
    max_occlusion_fraction: float = 0.3  # of the crop side, per rectangle side


NO_AUGMENTATION = AugmentConfig(0.0, 0.0, (1.0, 1.0), 0.0, 0.0, 0.0)

#: Stronger framing jitter, blur and occlusion against learning a few hundred people's identities
#: (the "augment" lever of bench/bench_levers.py): AugmentConfig fields over the recipe's.
ROBUST_AUGMENTATION: dict = dict(max_rotation_deg=20.0, scale_range=(0.85, 1.15), max_shift_fraction=0.1,
                                 blur_probability=0.3, occlusion_probability=0.3)


def flip(image: np.ndarray, keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror the image left-right; keypoints are mirrored and left/right names swapped."""
    return cv2.flip(image, 1), flip_keypoints(keypoints, image.shape[1]).astype(keypoints.dtype)


def affine_matrix(angle_deg: float = 0.0, scale: float = 1.0, shift_px: tuple[float, float] = (0.0, 0.0),
                  centre: tuple[float, float] = CENTRE) -> np.ndarray:
    """2x3 matrix: rotate by angle (counter-clockwise, degrees) and scale about `centre`, then shift."""
    m = cv2.getRotationMatrix2D(centre, angle_deg, scale)
    m[:, 2] += np.asarray(shift_px, dtype=np.float64)
    return m


def apply_affine(image: np.ndarray, keypoints: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same matrix on pixels (cv2.warpAffine) and on (15, 2) keypoints; NaN stays NaN."""
    h, w = image.shape[:2]
    warped = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    moved = keypoints @ matrix[:, :2].T + matrix[:, 2]
    return warped, moved.astype(keypoints.dtype)


def transform(image: np.ndarray, keypoints: np.ndarray, mirror: bool = False, angle_deg: float = 0.0,
              scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """One chosen (not random) augmentation, in the order training applies them: flip, then rotate and scale."""
    if mirror:
        image, keypoints = flip(image, keypoints)
    return apply_affine(image, keypoints, affine_matrix(angle_deg, scale))


def random_matrix(rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    angle = rng.uniform(-config.max_rotation_deg, config.max_rotation_deg)
    scale = rng.uniform(*config.scale_range)
    shift = rng.uniform(-config.max_shift_fraction, config.max_shift_fraction, 2) * CROP_SIZE
    return affine_matrix(angle, scale, tuple(shift))


def _inside(keypoints: np.ndarray, margin: float) -> bool:
    k = keypoints[~np.isnan(keypoints).any(axis=1)]
    return bool(((k >= margin) & (k <= CROP_SIZE - 1 - margin)).all())


def augment_one(image: np.ndarray, keypoints: np.ndarray, rng: np.random.Generator,
                config: AugmentConfig) -> tuple[np.ndarray, np.ndarray]:
    """One random draw of flip, geometry and lighting for one (96, 96) uint8 face."""
    if config.flip_probability and rng.random() < config.flip_probability:
        image, keypoints = flip(image, keypoints)
    if config.max_rotation_deg or config.scale_range != (1.0, 1.0) or config.max_shift_fraction:
        for _ in range(config.retries):
            m = random_matrix(rng, config)
            _, moved = apply_affine(image[:1, :1], keypoints, m)  # points first: cheap check
            if _inside(moved[:NUM_KEYPOINTS], config.keep_inside_px):
                image, keypoints = apply_affine(image, keypoints, m)
                break
    if config.brightness or config.contrast:
        gain = 1.0 + rng.uniform(-config.contrast, config.contrast)
        bias = rng.uniform(-config.brightness, config.brightness) * 255
        image = cv2.convertScaleAbs(image, alpha=gain, beta=bias + 127.5 * (1 - gain))
    if config.blur_probability and rng.random() < config.blur_probability:
        image = blur(image, rng.uniform(0.3, config.max_blur_sigma))
    if config.occlusion_probability and rng.random() < config.occlusion_probability:
        side = CROP_SIZE * config.max_occlusion_fraction
        width, height = (int(v) for v in rng.uniform(0.3 * side, side, 2).round())
        x, y = (int(v) for v in rng.integers(0, CROP_SIZE - np.array([width, height]) + 1))
        image = occlude(image, (x, y, width, height), int(rng.integers(0, 256)))
    return image, keypoints


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of `sigma` px; keypoints do not move."""
    return cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)


def occlude(image: np.ndarray, box_xywh: tuple[int, int, int, int], grey: int) -> np.ndarray:
    """A copy with one flat rectangle painted over it; the keypoints under it keep their labels (the
    model learns where hidden points are from the rest of the face)."""
    x, y, w, h = box_xywh
    out = image.copy()
    cv2.rectangle(out, (x, y), (x + w - 1, y + h - 1), grey, -1)
    return out


def augment_batch(images: np.ndarray, keypoints: np.ndarray, rng: np.random.Generator,
                  config: AugmentConfig) -> tuple[np.ndarray, np.ndarray]:
    """What the training pipeline feeds the model: each face augmented independently."""
    out_images = np.empty_like(images)
    out_keypoints = np.empty_like(keypoints)
    for i in range(len(images)):
        out_images[i], out_keypoints[i] = augment_one(images[i], keypoints[i], rng, config)
    return out_images, out_keypoints
