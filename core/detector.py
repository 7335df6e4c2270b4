"""Face detection: OpenCV's Haar frontal-face cascade on the grayscale image (the recipe's detector).

Large images are shrunk to `max_side` before detection (the cascade's cost grows with pixels and
faces in photos are rarely smaller than 1/20 of the long side); boxes come back in the caller's
pixels. Defaults were measured on ../shared/data/photos (bench/bench_detector.py) and the
YouTube-faces frames: scale 1.1 and 5 neighbours find every labelled face there.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CASCADE_FILE = "haarcascade_frontalface_default.xml"


@dataclass(frozen=True)
class DetectorSettings:
    """Haar parameters. Lower `min_neighbors` = more sensitive (more faces, more false alarms)."""

    scale_factor: float = 1.1
    min_neighbors: int = 5
    min_size_fraction: float = 0.04  # smallest face side, as a fraction of the image's shorter side
    max_side: int = 800  # detect on a copy no larger than this (pixels on the long side)


class FaceDetector:
    """Finds face boxes (x, y, w, h in image pixels) in a grayscale image."""

    def __init__(self, settings: DetectorSettings | None = None):
        self.settings = settings or DetectorSettings()
        self._cascade = cv2.CascadeClassifier(cv2.data.haarcascades + CASCADE_FILE)
        if self._cascade.empty():
            raise RuntimeError(f"OpenCV could not load {CASCADE_FILE} from {cv2.data.haarcascades}")

    def detect(self, gray: np.ndarray, settings: DetectorSettings | None = None) -> np.ndarray:
        """Boxes as an (N, 4) int array (x, y, w, h), largest first."""
        s = settings or self.settings
        if gray.ndim != 2:
            raise ValueError(f"detect() takes a 2-D grayscale image, got shape {gray.shape}")
        h, w = gray.shape
        factor = min(1.0, s.max_side / max(h, w))
        small = cv2.resize(gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA) if factor < 1 else gray
        min_side = max(20, int(round(s.min_size_fraction * min(small.shape))))
        boxes = self._cascade.detectMultiScale(
            small, scaleFactor=s.scale_factor, minNeighbors=s.min_neighbors, minSize=(min_side, min_side)
        )
        if len(boxes) == 0:
            return np.zeros((0, 4), dtype=int)
        boxes = np.round(np.asarray(boxes, dtype=np.float64) / factor).astype(int)
        return boxes[np.argsort(-boxes[:, 2] * boxes[:, 3], kind="stable")]
