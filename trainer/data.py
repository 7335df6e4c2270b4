"""Kaggle-format training data: read and validate `training.csv` (.csv, .csv.gz, .zip), split it.

A file has the 30 keypoint columns of core.schema.COORD_COLUMNS and `Image` (9216 space-separated
0-255 pixels, row-major 96x96). Extra columns are kept: `person` (a group id that keeps one
person's frames on one side of a split) and `frame` are written by trainer.importer.
Errors are `DatasetError`s whose message names the row (1-based data row) and column.
"""
from __future__ import annotations

import io
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np
import pandas as pd

from core.files import atomic_path
from core.schema import COORD_COLUMNS, CROP_SIZE, IMAGE_COLUMN, NUM_KEYPOINTS

GROUP_COLUMN = "person"
PIXELS = CROP_SIZE * CROP_SIZE
#: Keypoints (crop px) a face can have: inside the 96x96 crop, or beside it by up to one crop (off-centre
#: and jittered crops put some points outside). Beyond that a value is a unit or data error, and would
#: train a useless model (1e12 gave a test RMSE of 7e10 px).
COORD_RANGE_PX = (-CROP_SIZE, 2 * CROP_SIZE)


class DatasetError(ValueError):
    """The file is not usable training data; the message names the row and column at fault."""


#: Frame names containing this mark are extra crops of another row's frame (trainer.importer's jitter copies).
COPY_MARK = "#"


@dataclass
class KeypointData:
    """Faces and labels: images (N, 96, 96) uint8, keypoints (N, 15, 2) crop px with NaN = missing."""

    images: np.ndarray
    keypoints: np.ndarray
    groups: np.ndarray | None = None  # (N,) str person ids, when the file has them
    frames: np.ndarray | None = None  # (N,) str source frame names, when the file has them

    def __len__(self) -> int:
        return len(self.images)

    @property
    def complete(self) -> np.ndarray:
        """Boolean mask of rows with all 15 keypoints."""
        return ~np.isnan(self.keypoints).any(axis=(1, 2))

    @property
    def is_copy(self) -> np.ndarray:
        """Boolean mask of rows that are extra crops of a frame another row already holds."""
        if self.frames is None:
            return np.zeros(len(self), bool)
        return np.char.find(self.frames.astype(str), COPY_MARK) >= 0

    def subset(self, index: np.ndarray) -> "KeypointData":
        pick = lambda a: None if a is None else a[index]  # noqa: E731
        return KeypointData(self.images[index], self.keypoints[index], pick(self.groups), pick(self.frames))

    @staticmethod
    def concat(parts: list["KeypointData"]) -> "KeypointData":
        groups = None if any(p.groups is None for p in parts) else np.concatenate([p.groups for p in parts])
        frames = None if any(p.frames is None for p in parts) else np.concatenate([p.frames for p in parts])
        return KeypointData(np.concatenate([p.images for p in parts]), np.concatenate([p.keypoints for p in parts]),
                            groups, frames)


def _open_csv(source: str | os.PathLike | bytes | BinaryIO, name: str | None) -> tuple[BinaryIO, str]:
    """A binary stream of the CSV inside .csv / .csv.gz / .zip, plus the compression pandas should use."""
    if isinstance(source, (str, os.PathLike)):
        name = name or str(source)
        if not Path(source).is_file():
            raise DatasetError(f"No file at {source}.")
        source = open(source, "rb")
    elif isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    name = (name or "").lower()
    if name.endswith(".zip"):
        try:
            archive = zipfile.ZipFile(source)
        except zipfile.BadZipFile as exc:
            raise DatasetError("The .zip file is corrupt.") from exc
        members = [m for m in archive.namelist() if m.lower().endswith(".csv") and not m.startswith("__MACOSX")]
        if not members:
            raise DatasetError("The .zip file holds no .csv file.")
        return archive.open(members[0]), "infer"
    return source, "gzip" if name.endswith(".gz") else "infer"


def read_kaggle_csv(
    source: str | os.PathLike | bytes | BinaryIO,
    name: str | None = None,
    progress: Callable[[float], None] | None = None,
) -> KeypointData:
    """Parse and validate a Kaggle-format file. `progress(fraction)` is called while pixels parse."""
    stream, compression = _open_csv(source, name)
    try:
        table = pd.read_csv(stream, compression=compression, dtype={IMAGE_COLUMN: str}, low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, EOFError) as exc:
        raise DatasetError(f"Not a readable CSV file: {exc}") from exc
    except zlib.error as exc:
        raise DatasetError(f"The compressed file is corrupt (its data does not decompress: {exc}).") from exc
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"The .zip file is corrupt ({exc}).") from exc
    missing = [c for c in (*COORD_COLUMNS, IMAGE_COLUMN) if c not in table.columns]
    if missing:
        raise DatasetError(f"Missing column(s): {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}. "
                           f"A Kaggle training file has the 30 keypoint columns and '{IMAGE_COLUMN}'.")
    if len(table) == 0:
        raise DatasetError("The file has a header but no rows.")
    coords = np.empty((len(table), NUM_KEYPOINTS * 2), np.float32)
    for j, column in enumerate(COORD_COLUMNS):
        values = pd.to_numeric(table[column], errors="coerce")
        bad = values.isna() & table[column].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DatasetError(f"Row {row + 1}, column '{column}': {table[column].iloc[row]!r} is not a number.")
        _check_coordinate_range(values.to_numpy(np.float64), column)
        coords[:, j] = values.to_numpy(np.float32)
    images = np.empty((len(table), CROP_SIZE, CROP_SIZE), np.uint8)
    pixel_strings = table[IMAGE_COLUMN].to_numpy()
    step = max(1, len(table) // 50)
    for i, text in enumerate(pixel_strings):
        images[i] = _parse_pixels(text, i)
        if progress and i % step == 0:
            progress(i / len(table))
    if progress:
        progress(1.0)
    groups = table[GROUP_COLUMN].astype(str).to_numpy() if GROUP_COLUMN in table.columns else None
    frames = table["frame"].astype(str).to_numpy() if "frame" in table.columns else None
    return KeypointData(images, coords.reshape(-1, NUM_KEYPOINTS, 2), groups, frames)


def _check_coordinate_range(values: np.ndarray, column: str) -> None:
    """Refuse infinite and absurd keypoints (NaN is a missing label and fine), naming the first bad row."""
    low, high = COORD_RANGE_PX
    bad = np.isinf(values) | (values < low) | (values > high)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DatasetError(f"Row {row + 1}, column '{column}': {values[row]:g} is not a keypoint position; "
                           f"positions are crop pixels from {low} to {high} (the crop is {CROP_SIZE}x{CROP_SIZE}).")


def _parse_pixels(text: object, row: int) -> np.ndarray:
    if not isinstance(text, str) or not text.strip():
        raise DatasetError(f"Row {row + 1}, column '{IMAGE_COLUMN}': empty pixel string.")
    try:
        values = np.array(text.split(), dtype=np.float32)
    except ValueError as exc:
        raise DatasetError(f"Row {row + 1}, column '{IMAGE_COLUMN}': pixels must be numbers ({exc}).") from exc
    if values.size != PIXELS:
        raise DatasetError(f"Row {row + 1}, column '{IMAGE_COLUMN}': {values.size} pixels, expected {PIXELS} (96x96).")
    if values.min() < 0 or values.max() > 255:
        raise DatasetError(f"Row {row + 1}, column '{IMAGE_COLUMN}': pixel values must be within 0-255 "
                           f"(found {values.min():g} to {values.max():g}).")
    return values.astype(np.uint8).reshape(CROP_SIZE, CROP_SIZE)


def write_kaggle_csv(data: KeypointData, path: str | os.PathLike) -> Path:
    """Write Kaggle format (plus person/frame when known) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(data.keypoints.reshape(len(data), -1), columns=list(COORD_COLUMNS)).round(3)
    table[IMAGE_COLUMN] = [" ".join(map(str, img.reshape(-1).tolist())) for img in data.images]  # ints format faster
    if data.groups is not None:
        table[GROUP_COLUMN] = data.groups
    if data.frames is not None:
        table["frame"] = data.frames
    # gzip level 6 (gzip's own default): about the size of pandas' level 9 on pixel text, and faster to write
    gzip = {"method": "gzip", "compresslevel": 6}
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, compression=gzip if path.suffix == ".gz" else None)
    return path


def split_indices(n_rows: int, test_size: int | float, seed: int = 0,
                  groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, test) row indices. With groups, whole groups go to one side (never split a person).

    `test_size` is a row count (int) or a fraction (float); with groups it is met as closely as whole
    groups allow.
    """
    rng = np.random.default_rng(seed)
    target = int(round(test_size * n_rows)) if isinstance(test_size, float) else int(test_size)
    target = min(max(target, 0), n_rows)
    if groups is None:
        order = rng.permutation(n_rows)
        return np.sort(order[target:]), np.sort(order[:target])
    names = np.unique(groups)
    rng.shuffle(names)
    test_groups, count = [], 0
    sizes = pd.Series(groups).value_counts()
    for name in names:
        if count >= target:
            break
        test_groups.append(name)
        count += int(sizes[name])
    is_test = np.isin(groups, test_groups)
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)
