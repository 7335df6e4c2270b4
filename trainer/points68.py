"""The 68 iBUG points of each imported face, kept beside its Kaggle file: the auxiliary training target.

The Kaggle CSV holds 15 points (core.schema.ibug68_to_kaggle15 of the 68), so the file stays what every
Kaggle reader expects. The 68 points live in a sidecar `<file>.points68.npz` (frame name -> (68, 2) crop
px), written by import-68, or made for an existing file by `python -m trainer points-68` from the frames'
labels without detecting again: each row's crop is the one similarity transform that takes the frame's
15 points (mapped from its 68) onto the row's 15 crop points, so the same transform carries the 68.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from core.files import atomic_path
from core.schema import ibug68_to_kaggle15
from trainer.data import COPY_MARK, DatasetError, KeypointData

#: A row whose 15 crop points the fitted transform misses by more than this (crop px) is not that frame's face.
FIT_TOLERANCE_PX = 0.05


def sidecar_path(data_path: str | os.PathLike) -> Path:
    """Where the 68 points of a Kaggle file live: beside it, `<name>.points68.npz`."""
    path = Path(data_path)
    return path.with_name(path.name + ".points68.npz")


def write_sidecar(data_path: str | os.PathLike, frames: np.ndarray, points68: np.ndarray) -> Path:
    """Write frame names and their (N, 68, 2) crop px points beside `data_path`, atomically."""
    if len(frames) != len(points68) or np.asarray(points68).shape[1:] != (68, 2):
        raise ValueError(f"expected one (68, 2) array per frame, got {np.shape(points68)} for {len(frames)} frames")
    path = sidecar_path(data_path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, frames=np.asarray(frames, dtype=str), points68=np.asarray(points68, np.float32))
    return path


def attach(data: KeypointData, data_path: str | os.PathLike) -> KeypointData:
    """`data` with each row's 68 points from the sidecar of `data_path` (matched by frame name).

    DatasetError, naming the command that makes one, when there is no sidecar or a row has no entry."""
    path = sidecar_path(data_path)
    if not path.is_file():
        raise DatasetError(f"{Path(data_path).name} has no 68-point sidecar ({path.name}); make it with "
                           f"python -m trainer points-68 {data_path} --frames <the 68-point frames zip or folder>.")
    if data.frames is None:
        raise DatasetError(f"{Path(data_path).name} has no frame column, so its rows cannot be matched to 68 points.")
    with np.load(path, allow_pickle=False) as z:
        index = {str(f): i for i, f in enumerate(z["frames"])}
        points = z["points68"]
    rows = [index.get(str(f), -1) for f in data.frames]
    missing = [str(f) for f, i in zip(data.frames, rows) if i < 0]
    if missing:
        raise DatasetError(f"{path.name} has no 68 points for {len(missing)} of {len(data)} rows "
                           f"(first: {missing[0]}); make it again with python -m trainer points-68.")
    return KeypointData(data.images, data.keypoints, data.groups, data.frames, points[rows].astype(np.float32))


def fit_similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x3 similarity (scale, rotation, shift) taking (N, 2) `source` points onto `target` in least squares;
    NaN targets are left out. Needs two labelled points."""
    keep = ~np.isnan(target).any(axis=1)
    s, t = source[keep].astype(np.float64), target[keep].astype(np.float64)
    if len(s) < 2:
        raise ValueError("a similarity needs at least two labelled points")
    # x' = a x - b y + tx, y' = b x + a y + ty
    rows = np.zeros((2 * len(s), 4))
    rows[0::2] = np.column_stack([s[:, 0], -s[:, 1], np.ones(len(s)), np.zeros(len(s))])
    rows[1::2] = np.column_stack([s[:, 1], s[:, 0], np.zeros(len(s)), np.ones(len(s))])
    (a, b, tx, ty), *_ = np.linalg.lstsq(rows, t.reshape(-1), rcond=None)
    return np.array([[a, -b, tx], [b, a, ty]])


def crop_points68(data: KeypointData, frame_points68: dict[str, np.ndarray]) -> np.ndarray:
    """(N, 68, 2) crop px points of each row, from its frame's 68 labels in frame px (jitter copies map to
    their frame): the row's crop transform is fitted on its 15 points. DatasetError when a row's frame is
    unknown or its points are not that frame's (fit worse than FIT_TOLERANCE_PX)."""
    out = np.empty((len(data), 68, 2), np.float32)
    for i, frame in enumerate(data.source_frames):
        name = str(frame).split(COPY_MARK)[0]
        if name not in frame_points68:
            raise DatasetError(f"row {i + 1}: frame {name} is not in the 68-point labels")
        pts = frame_points68[name]
        m = fit_similarity(ibug68_to_kaggle15(pts), data.keypoints[i])
        fitted = ibug68_to_kaggle15(pts) @ m[:, :2].T + m[:, 2]
        miss = np.nanmax(np.abs(fitted - data.keypoints[i]))
        if not miss <= FIT_TOLERANCE_PX:
            raise DatasetError(f"row {i + 1} ({frame}): its 15 points are not a crop of the frame's labels "
                               f"(off by {miss:.2f} px)")
        out[i] = pts @ m[:, :2].T + m[:, 2]
    return out


def make_sidecar(data_path: str | os.PathLike, frames_source: str | os.PathLike,
                 csv_path: str | os.PathLike | None = None) -> Path:
    """The sidecar of an existing imported (or kaggle-shaped) file, from the frames' 68-point labels."""
    from trainer.data import read_kaggle_csv
    from trainer.frames import FrameSource

    data = read_kaggle_csv(data_path)
    names, points = FrameSource(frames_source).read_labels(csv_path)
    return write_sidecar(data_path, data.source_frames, crop_points68(data, dict(zip(names, points))))
