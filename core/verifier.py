"""Face verifier: a small CNN that scores "is this a face" on the keypoint model's 96x96 crop of a box.

The Haar cascade also fires on ties, collars, necks, scarves and textures; the keypoint model then
draws a face on them. The verifier reads the same crop the keypoint model would read
(core.geometry.crop_from_box) and scores it in [0, 1]; boxes under its card's threshold are
rejected. The threshold was chosen on validation people to keep >= 99.7% of true faces
(trainer.verifier, which trains it; its card beside the model records precision and recall).

Runs through ONNX Runtime like the keypoint model (core.model.OnnxModel); bench/bench_verifier.py
measures its cost per box. When the verifier files are missing the app works without it.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from core.card import VerifierCard
from core.geometry import crop_from_box
from core.model import ModelError, OnnxModel, to_model_input
from core.paths import SHARED_68_DATASET_ARG, SHIPPED_VERIFIER

log = logging.getLogger(__name__)

#: Used when a verifier's card records no threshold.
DEFAULT_THRESHOLD = 0.5


class FaceVerifier(OnnxModel):
    """Crops in, face scores out (one sigmoid output per crop)."""

    OUTPUT_SIZE = 1
    CARD = VerifierCard

    def __init__(self, keras_path: str | os.PathLike, threads: int | None = None):
        if not Path(keras_path).is_file():
            raise ModelError(f"No face verifier at {keras_path}. Train one: python -m trainer train-verifier "
                             f"--frames {SHARED_68_DATASET_ARG}, or restore models/.")
        super().__init__(keras_path, threads)
        self.threshold = float(DEFAULT_THRESHOLD if self.card.threshold is None else self.card.threshold)

    def score_crops(self, crops: np.ndarray) -> np.ndarray:
        """uint8 crops (N, 96, 96) -> (N,) face scores in [0, 1]."""
        crops = np.asarray(crops)
        if crops.ndim == 2:
            crops = crops[None]
        if len(crops) == 0:
            return np.zeros(0)
        return self.predict_normalised(to_model_input(crops)).reshape(-1).astype(np.float64)

    def score_boxes(self, gray: np.ndarray, boxes_xywh: Sequence) -> np.ndarray:
        """(N,) face scores of detector boxes, each read through the keypoint model's crop of that box."""
        boxes = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            return np.zeros(0)
        return self.score_crops(np.stack([crop_from_box(b).extract(gray) for b in boxes]))


def load_verifier(path: str | os.PathLike | None = None) -> FaceVerifier | None:
    """The verifier at `path` (default: FKS_VERIFIER, else the shipped one), or None with a log message
    when it is missing or unreadable: detection then keeps every box, as before the verifier existed."""
    path = Path(path or os.environ.get("FKS_VERIFIER") or SHIPPED_VERIFIER)
    try:
        return FaceVerifier(path)
    except ModelError as exc:
        log.warning("Face verifier not used (every detector box is kept): %s", exc)
        return None
