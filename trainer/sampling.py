"""Which rows an epoch trains on: each row once (the recipe), or turned heads more often.

The YouTube-faces data is mostly frontal: in 3% of its faces the nose tip sits more than half the
eye distance off the eyes' midpoint, and held-out frames like those were the model's worst
(near-profile frames at NME > 1). `pose_balance` draws an epoch's rows with probability
proportional to (rows in the same head-turn bin) ** -pose_balance: 0 gives every row the same
chance (the recipe), 1 gives every bin the same share.
"""
from __future__ import annotations

import numpy as np

from core.schema import KEYPOINT_NAMES

_LEFT_EYE = KEYPOINT_NAMES.index("left_eye_center")
_RIGHT_EYE = KEYPOINT_NAMES.index("right_eye_center")
_NOSE = KEYPOINT_NAMES.index("nose_tip")

#: Head-turn bins: [0, 0.1), [0.1, 0.2), ... and everything from 0.6 on in one bin.
BIN_WIDTH = 0.1
LAST_BIN = 6


def head_turn(keypoints: np.ndarray) -> np.ndarray:
    """(N, 15, 2) -> (N,) |nose tip x - eye midpoint x| / eye distance: 0 frontal, ~0.6+ near profile.

    NaN where the eyes or nose are missing (incomplete Kaggle rows).
    """
    k = np.asarray(keypoints, dtype=np.float64)
    left, right, nose = k[:, _LEFT_EYE], k[:, _RIGHT_EYE], k[:, _NOSE]
    eye_distance = np.linalg.norm(left - right, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.abs(nose[:, 0] - (left[:, 0] + right[:, 0]) / 2) / eye_distance


def pose_balanced_probabilities(keypoints: np.ndarray, balance: float) -> np.ndarray | None:
    """Per-row sampling probabilities (sum 1) that favour rare head turns; None when balance is 0.

    Rows whose head turn cannot be measured go in the most common bin (they are never favoured).
    """
    if balance <= 0 or len(keypoints) == 0:
        return None
    turn = head_turn(keypoints)
    bins = np.minimum(np.floor(np.nan_to_num(turn, nan=0.0) / BIN_WIDTH), LAST_BIN).astype(int)
    counts = np.bincount(bins, minlength=LAST_BIN + 1).astype(np.float64)
    weights = counts[bins] ** -float(balance)
    return weights / weights.sum()
