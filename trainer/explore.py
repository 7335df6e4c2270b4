"""Dataset statistics for the Dataset page, and the run files it reads (pseudo labels); no drawing here
(pages/ui/pictures draws the faces).

Everything takes a trainer.data.KeypointData, so the page, tests and benchmarks share it.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from core.schema import KEYPOINT_NAMES, NUM_KEYPOINTS
from trainer.augment import AugmentConfig, augment_batch
from trainer.data import KeypointData
from trainer.sampling import head_turn


def summary(data: KeypointData) -> dict:
    complete = int(data.complete.sum())
    return {"rows": len(data), "complete": complete, "incomplete": len(data) - complete,
            "people": len(set(data.groups)) if data.groups is not None else None}


def completeness(data: KeypointData) -> pd.DataFrame:
    """Per keypoint: how many rows label it, and the fraction, in schema order."""
    labelled = (~np.isnan(data.keypoints).any(axis=2)).sum(axis=0)
    return pd.DataFrame({"keypoint": KEYPOINT_NAMES, "labelled_rows": labelled,
                         "fraction": labelled / max(len(data), 1)})


def missing_patterns(data: KeypointData, top: int = 15) -> pd.DataFrame:
    """Which sets of keypoints are missing together, and how often (most frequent first)."""
    missing = np.isnan(data.keypoints).any(axis=2)
    labels = ["none (complete)" if not row.any() else ", ".join(np.array(KEYPOINT_NAMES)[row]) for row in missing]
    counts = pd.Series(labels).value_counts()
    missing_count = [0 if label.startswith("none") else label.count(",") + 1 for label in counts.index]
    return pd.DataFrame({"missing keypoints": counts.index, "rows": counts.to_numpy(),
                         "missing count": missing_count}).head(top)


def filter_rows(data: KeypointData, which: str) -> np.ndarray:
    """Row indices for 'all', 'complete', 'incomplete' or 'missing <keypoint name>'."""
    if which == "all":
        return np.arange(len(data))
    if which == "complete":
        return np.flatnonzero(data.complete)
    if which == "incomplete":
        return np.flatnonzero(~data.complete)
    name = which.removeprefix("missing ")
    if name not in KEYPOINT_NAMES:
        raise ValueError(f"unknown filter {which!r}")
    return np.flatnonzero(np.isnan(data.keypoints[:, KEYPOINT_NAMES.index(name)]).any(axis=1))


def augmented_sample(data: KeypointData, config: AugmentConfig, seed: int, size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """`size` rows drawn at random (reproducibly from `seed`) and augmented as the training pipeline does."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(data), size=min(size, len(data)), replace=False)
    return augment_batch(data.images[rows], data.keypoints[rows], rng, config)


def runs_with_pseudo_labels(root: str | os.PathLike) -> list[str]:
    """Runs under `root` that saved pseudo labels with the mask of model-drawn points, newest first."""
    found = [p for p in Path(root).glob("*/pseudo_labels.npz") if p.is_file()]
    return [p.parent.name for p in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)]


def pseudo_labels(data: KeypointData, npz_path: str | os.PathLike) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """A run's pseudo labels (trainer.runs' pseudo_labels.npz) matched to this file's rows by their pixels:
    {row index: ((15, 2) keypoints, (15,) mask of the points the model drew)}; empty when the run saved
    none that this file holds, or saved no mask (runs before it was kept)."""
    if not Path(npz_path).is_file():
        return {}
    with np.load(npz_path) as z:
        if "filled" not in z:
            return {}
        images, keypoints, filled = z["images"], z["keypoints"], z["filled"]
    index = {row.tobytes(): i for i, row in enumerate(data.images)}
    return {index[image.tobytes()]: (keypoints[j], filled[j]) for j, image in enumerate(images)
            if image.tobytes() in index}


def keypoint_positions(data: KeypointData, max_points: int = 30000, seed: int = 0) -> pd.DataFrame:
    """Long table (keypoint, x, y) of labelled positions, sampled to at most max_points rows."""
    k = data.keypoints.reshape(-1, 2)
    names = np.tile(np.array(KEYPOINT_NAMES), len(data))
    keep = ~np.isnan(k).any(axis=1)
    table = pd.DataFrame({"keypoint": names[keep], "x": k[keep, 0], "y": k[keep, 1]})
    if len(table) > max_points:
        table = table.sample(max_points, random_state=seed)
    return table


def mean_shape(data: KeypointData) -> pd.DataFrame:
    mean = np.nanmean(data.keypoints, axis=0) if len(data) else np.full((NUM_KEYPOINTS, 2), np.nan)
    return pd.DataFrame({"keypoint": KEYPOINT_NAMES, "x": mean[:, 0], "y": mean[:, 1]})


def head_turns(data: KeypointData) -> pd.DataFrame:
    """Head turn of every row where it can be measured (trainer.sampling.head_turn), for a histogram."""
    turn = head_turn(data.keypoints)
    return pd.DataFrame({"head turn": turn[np.isfinite(turn)]})
