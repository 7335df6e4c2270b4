"""Kaggle-format training data: read and validate `training.csv` (.csv, .csv.gz, .zip), split it.

A file has the 30 keypoint columns of core.schema.COORD_COLUMNS and `Image` (9216 space-separated
0-255 pixels, row-major 96x96). Extra columns are kept: `person` (a group id that keeps one
person's frames on one side of a split) and `frame` are written by trainer.importer.
Errors are `DatasetError`s whose message names the row (1-based data row) and column.
"""
from __future__ import annotations

import contextlib
import gzip
import io
import os
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

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
    # (N, 68, 2) crop px iBUG points of each face, when attached (trainer.points68: the auxiliary target)
    points68: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.images)

    @property
    def complete(self) -> np.ndarray:
        """Boolean mask of rows with all 15 keypoints."""
        return ~np.isnan(self.keypoints).any(axis=(1, 2))

    @property
    def people(self) -> np.ndarray:
        """(N,) person ids; ValueError for a file without a person column (a split by person needs one)."""
        if self.groups is None:
            raise ValueError("this data has no person column (python -m trainer import-68 writes one)")
        return self.groups

    @property
    def source_frames(self) -> np.ndarray:
        """(N,) source frame names; ValueError for a file without a frame column."""
        if self.frames is None:
            raise ValueError("this data has no frame column (python -m trainer import-68 writes one)")
        return self.frames

    @property
    def is_copy(self) -> np.ndarray:
        """Boolean mask of rows that are extra crops of a frame another row already holds."""
        if self.frames is None:
            return np.zeros(len(self), bool)
        return np.char.find(self.frames.astype(str), COPY_MARK) >= 0

    def subset(self, index: np.ndarray) -> KeypointData:
        return KeypointData(self.images[index], self.keypoints[index],
                            None if self.groups is None else self.groups[index],
                            None if self.frames is None else self.frames[index],
                            None if self.points68 is None else self.points68[index])

    @staticmethod
    def concat(parts: list[KeypointData]) -> KeypointData:
        groups = None if any(p.groups is None for p in parts) else np.concatenate([p.groups for p in parts])
        frames = None if any(p.frames is None for p in parts) else np.concatenate([p.frames for p in parts])
        points68 = None if any(p.points68 is None for p in parts) else np.concatenate([p.points68 for p in parts])
        return KeypointData(np.concatenate([p.images for p in parts]), np.concatenate([p.keypoints for p in parts]),
                            groups, frames, points68)


#: The most rows a file may have: 50,000 faces are 461 MB of uint8 images once read (the recipe's largest
#: set, pseudo-labels included, had 29,520). FKS_DATASET_MAX_ROWS raises or lowers it.
MAX_ROWS = 50_000
#: The longest line a file may have, decompressed: a row's 9216 pixels written as "255.0 " take 55 KB, so
#: a longer line is not a face and is refused before it is split into tokens.
MAX_LINE_BYTES = 128 * 1024
#: Rows parsed at a time: memory beyond the final arrays stays near one chunk of pixel text (~35 MB).
CHUNK_ROWS = 1000


def max_rows() -> int:
    """MAX_ROWS, or FKS_DATASET_MAX_ROWS when set to a positive integer."""
    value = os.environ.get("FKS_DATASET_MAX_ROWS", "")
    return int(value) if value.strip().isdigit() and int(value) > 0 else MAX_ROWS


class _Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _LineGuard(io.RawIOBase):
    """A decompressed byte stream that refuses a line longer than MAX_LINE_BYTES as it is read, so a small
    compressed file cannot make the parser hold one huge line (a 49 KB .gz can hold a 25-million-token row)."""

    def __init__(self, raw: _Reader, fraction: Callable[[], float], owned: tuple = ()):
        super().__init__()
        self._raw, self._line, self.fraction = raw, 0, fraction
        self._owned = owned  # closed with this stream: what _open_csv opened (never a caller's own stream)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            for item in self._owned:
                with contextlib.suppress(Exception):
                    item.close()
        super().close()

    def readinto(self, buffer) -> int:
        data = self._raw.read(min(len(buffer), 1 << 18))
        first = data.find(b"\n")
        longest = self._line + (len(data) if first < 0 else first)
        if first >= 0:
            last = data.rfind(b"\n")
            # lines wholly inside this block: at most the block's span between its first and last newline
            longest = max(longest, max((len(x) for x in data[first + 1:last].split(b"\n")), default=0))
            self._line = len(data) - last - 1
        else:
            self._line = longest
        if longest > MAX_LINE_BYTES:
            raise DatasetError(f"A line of the file is longer than {MAX_LINE_BYTES // 1024} KB; a row of 96x96 "
                               f"pixels is far shorter. Not a Kaggle training file.")
        buffer[: len(data)] = data
        return len(data)


def _open_csv(source: str | os.PathLike | bytes | BinaryIO, name: str | None) -> _LineGuard:
    """The decompressed CSV inside .csv / .csv.gz / .zip, as a guarded stream that knows how far it has read."""
    opened: tuple = ()
    if isinstance(source, (str, os.PathLike)):
        name = name or str(source)
        if not Path(source).is_file():
            raise DatasetError(f"No file at {source}.")
        source = open(source, "rb")
        opened = (source,)
    elif isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    try:
        return _guarded(source, (name or "").lower(), opened)
    except BaseException:
        for item in opened:
            item.close()
        raise


def _guarded(source: BinaryIO, name: str, opened: tuple) -> _LineGuard:
    if name.endswith(".zip"):
        try:
            archive = zipfile.ZipFile(source)
        except zipfile.BadZipFile as exc:
            raise DatasetError("The .zip file is corrupt.") from exc
        members = [m for m in archive.infolist() if m.filename.lower().endswith(".csv")
                   and not m.filename.startswith("__MACOSX")]
        if not members:
            raise DatasetError("The .zip file holds no .csv file.")
        if len(members) > 1:
            listed = ", ".join(m.filename for m in members[:4]) + (" ..." if len(members) > 4 else "")
            raise DatasetError(f"The .zip file holds {len(members)} .csv files ({listed}); "
                               f"put one training file in it, or upload the .csv itself.")
        member = archive.open(members[0])
        total = max(members[0].file_size, 1)
        return _LineGuard(member, lambda: member.tell() / total, (member, archive, *opened))
    size = source.seek(0, io.SEEK_END) if source.seekable() else 0
    if source.seekable():
        source.seek(0)
    fraction = (lambda: source.tell() / size) if size else (lambda: 0.0)
    if name.endswith(".gz"):
        unzipped = gzip.GzipFile(fileobj=source, mode="rb")
        return _LineGuard(unzipped, fraction, (unzipped, *opened))
    return _LineGuard(source, fraction, opened)


def read_kaggle_csv(
    source: str | os.PathLike | bytes | BinaryIO,
    name: str | None = None,
    progress: Callable[[float], None] | None = None,
) -> KeypointData:
    """Parse and validate a Kaggle-format file. `progress(fraction)` is called while pixels parse.

    Read CHUNK_ROWS rows at a time into uint8 images, so memory stays near the final arrays whatever the
    compression ratio; more than max_rows() rows, or a line longer than MAX_LINE_BYTES, is refused.
    """
    stream = _open_csv(source, name)
    limit = max_rows()
    images: list[np.ndarray] = []
    coords: list[np.ndarray] = []
    groups: list[np.ndarray] | None = []
    frames: list[np.ndarray] | None = []
    rows = 0
    try:
        reader = pd.read_csv(io.BufferedReader(stream, 1 << 18), dtype={IMAGE_COLUMN: str}, chunksize=CHUNK_ROWS)
        for table in reader:
            if rows == 0:
                _check_columns(table)
            if rows + len(table) > limit:
                raise DatasetError(f"The file has more than {limit:,} rows, the most this app reads "
                                   f"(FKS_DATASET_MAX_ROWS; {limit:,} faces take {limit * PIXELS / 1e6:,.0f} MB).")
            coords.append(_coordinates(table, rows))
            chunk = np.empty((len(table), CROP_SIZE, CROP_SIZE), np.uint8)
            for i, text in enumerate(table[IMAGE_COLUMN].to_numpy()):
                chunk[i] = _parse_pixels(text, rows + i)
            images.append(chunk)
            if groups is not None:
                groups = [*groups, table[GROUP_COLUMN].astype(str).to_numpy()] if GROUP_COLUMN in table else None
            if frames is not None:
                frames = [*frames, table["frame"].astype(str).to_numpy()] if "frame" in table else None
            rows += len(table)
            if progress:
                progress(min(stream.fraction(), 0.99))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, EOFError) as exc:
        raise DatasetError(f"Not a readable CSV file: {exc}") from exc
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise DatasetError(f"The compressed file is corrupt (its data does not decompress: {exc}).") from exc
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"The .zip file is corrupt ({exc}).") from exc
    except OSError as exc:
        raise DatasetError(f"Not a readable CSV file: {exc}") from exc
    finally:
        stream.close()
    if rows == 0:
        raise DatasetError("The file has a header but no rows.")
    if progress:
        progress(1.0)
    keypoints = np.concatenate(coords).reshape(-1, NUM_KEYPOINTS, 2)
    return KeypointData(np.concatenate(images), keypoints, None if groups is None else np.concatenate(groups),
                        None if frames is None else np.concatenate(frames))


def _check_columns(table: pd.DataFrame) -> None:
    missing = [c for c in (*COORD_COLUMNS, IMAGE_COLUMN) if c not in table.columns]
    if missing:
        raise DatasetError(f"Missing column(s): {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}. "
                           f"A Kaggle training file has the 30 keypoint columns and '{IMAGE_COLUMN}'.")


def _coordinates(table: pd.DataFrame, first_row: int) -> np.ndarray:
    """(rows, 30) float32 keypoint columns of one chunk; errors name the file's row (chunks start at `first_row`)."""
    coords = np.empty((len(table), NUM_KEYPOINTS * 2), np.float32)
    for j, column in enumerate(COORD_COLUMNS):
        values = pd.to_numeric(table[column], errors="coerce")
        bad = values.isna() & table[column].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DatasetError(f"Row {first_row + row + 1}, column '{column}': {table[column].iloc[row]!r} "
                               f"is not a number.")
        _check_coordinate_range(values.to_numpy(np.float64), column, first_row)
        coords[:, j] = values.to_numpy(np.float32)
    return coords


def _check_coordinate_range(values: np.ndarray, column: str, first_row: int = 0) -> None:
    """Refuse infinite and absurd keypoints (NaN is a missing label and fine), naming the first bad row."""
    low, high = COORD_RANGE_PX
    bad = np.isinf(values) | (values < low) | (values > high)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DatasetError(f"Row {first_row + row + 1}, column '{column}': {values[row]:g} is not a keypoint position; "
                           f"positions are crop pixels from {low} to {high} (the crop is {CROP_SIZE}x{CROP_SIZE}).")


def _parse_pixels(text: object, row: int) -> np.ndarray:
    """One row's pixel string -> (96, 96) uint8; whole numbers 0-255 only (a NaN or 1.7 is a data error,
    which a cast to uint8 would turn into 0 or 1 without a word)."""
    if not isinstance(text, str) or not text.strip():
        raise DatasetError(f"Row {row + 1}, column '{IMAGE_COLUMN}': empty pixel string.")
    try:
        values = np.array(text.split(), dtype=np.float32)
    except ValueError as exc:
        raise DatasetError(f"Row {row + 1}, column '{IMAGE_COLUMN}': pixels must be numbers ({exc}).") from exc
    if values.size != PIXELS:
        raise DatasetError(f"Row {row + 1}, column '{IMAGE_COLUMN}': {values.size} pixels, expected {PIXELS} (96x96).")
    odd = ~np.isfinite(values)
    if odd.any():
        raise DatasetError(f"Row {row + 1}, column '{IMAGE_COLUMN}': pixel {int(np.flatnonzero(odd)[0]) + 1} "
                           f"is {values[odd][0]:g}; pixel values are whole numbers 0-255.")
    if values.min() < 0 or values.max() > 255:
        raise DatasetError(f"Row {row + 1}, column '{IMAGE_COLUMN}': pixel values must be within 0-255 "
                           f"(found {values.min():g} to {values.max():g}).")
    fractional = values != np.round(values)
    if fractional.any():
        raise DatasetError(f"Row {row + 1}, column '{IMAGE_COLUMN}': pixel {int(np.flatnonzero(fractional)[0]) + 1} is "
                           f"{values[fractional][0]:g}; pixel values are whole numbers 0-255.")
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
