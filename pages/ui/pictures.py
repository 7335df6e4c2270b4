"""Faces as the Dataset and Training pages show them: 96x96 crops upscaled with their keypoints drawn,
and the gallery's pages. The numbers behind those pages stay in trainer.explore (benches and tests use them)."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from core.overlays import draw_keypoints

#: BGR colour of pseudo-labelled points (drawn by a model), apart from the real labels' green.
PSEUDO_COLOUR = (255, 0, 255)
#: BGR colour of a model's predicted points beside the true ones (green).
PREDICTED_COLOUR = (0, 0, 255)


def face_picture(image: np.ndarray, keypoints: np.ndarray, scale: int = 2, labels: bool = False,
                 pseudo: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """A 96x96 face upscaled to BGR with its keypoints drawn (missing ones are skipped); `labels`
    numbers them (core.overlays.KEYPOINT_LEGEND says which number is which). `pseudo`: (15, 2) keypoints
    and a (15,) mask of the ones a model drew, shown in PSEUDO_COLOUR beside the real ones."""
    big = cv2.resize(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    picture = draw_keypoints(big, (np.asarray(keypoints) + 0.5) * scale - 0.5, labels=labels)
    if pseudo is not None:
        drawn = np.where(np.asarray(pseudo[1], bool)[:, None], pseudo[0], np.nan)
        draw_keypoints(picture, (drawn + 0.5) * scale - 0.5, labels=labels, colour=PSEUDO_COLOUR)
    return picture


def held_out_pictures(npz_path: str | os.PathLike, scale: int = 2) -> list[np.ndarray]:
    """A run's held-out faces (test_faces.npz, trainer.runs) with true keypoints in green and predicted
    ones in PREDICTED_COLOUR; [] when the run saved none."""
    if not Path(npz_path).is_file():
        return []
    with np.load(npz_path) as z:
        pictures = []
        for image, truth, predicted in zip(z["images"], z["truth"], z["predicted"]):
            picture = face_picture(image, truth, scale=scale)
            draw_keypoints(picture, (predicted + 0.5) * scale - 0.5, colour=PREDICTED_COLOUR)
            pictures.append(picture)
    return pictures


def gallery_pages(rows: np.ndarray, per_page: int) -> list[np.ndarray]:
    """Row indices split into gallery pages of `per_page` (at least one page, maybe empty)."""
    return [rows[i:i + per_page] for i in range(0, len(rows), per_page)] or [rows[:0]]
