"""Synthetic keypoint data: faces drawn as blobs at known keypoints, for tests, benches and demos
that must run without the real frames (a model can learn something from them)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from core.schema import CROP_SIZE
from trainer.data import KeypointData, write_kaggle_csv

#: A frontal face's 15 keypoints in a 96x96 crop (schema order), about where detector crops put them.
FRONTAL_SHAPE_CROP = np.array([[62, 37], [35, 37], [57, 37], [67, 36], [40, 37], [30, 37], [56, 28], [73, 29], [40, 28],
                               [23, 30], [49, 53], [60, 67], [38, 67], [49, 64], [49, 73]], np.float32)


def synthetic_faces(n: int, seed: int = 0, incomplete_every: int = 0, people: int = 0) -> KeypointData:
    """Blobs drawn at the keypoints (so a model can learn something), optional NaN labels and person ids."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, CROP_SIZE, CROP_SIZE), np.uint8)
    keypoints = np.empty((n, 15, 2), np.float32)
    for i in range(n):
        k = FRONTAL_SHAPE_CROP + rng.normal(0, 2, FRONTAL_SHAPE_CROP.shape) + rng.uniform(-5, 5, 2)
        img = np.full((CROP_SIZE, CROP_SIZE), 90, np.uint8)
        cv2.ellipse(img, (48, 50), (34, 44), 0, 0, 360, 160, -1)
        for x, y in k:
            cv2.circle(img, (int(round(x)), int(round(y))), 2, 30, -1)
        images[i], keypoints[i] = img, k
        if incomplete_every and i % incomplete_every == 1:
            keypoints[i, rng.choice(15, 5, replace=False)] = np.nan
    groups = np.array([f"p{i % people}" for i in range(n)]) if people else None
    return KeypointData(images, keypoints, groups)


def write_synthetic_csv(path: Path, n: int = 48, **kwargs) -> Path:
    return write_kaggle_csv(synthetic_faces(n, **kwargs), path)
