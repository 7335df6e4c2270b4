"""Atomic file writes: a reader (another process, a crash, a resume) sees the old file or the new one,
never half of one.

Whole files that the app or the trainer read back (models, cards, configs, training CSVs, the active-model
pointer, uploads) go through `atomic_path`: the content is written to a hidden temporary name in the same
folder (same filesystem, so the rename is atomic) that keeps the final suffix, because Keras (`.keras`), NumPy
(`.npz`) and pandas (`.gz`) choose the format from it; then it is renamed over the target. A failed write
removes its temporary file and leaves the target as it was. Append-only logs (a run's events.jsonl) and marker
files are not whole files and do not go through it.
"""
from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path`, on error it is removed."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}{target.suffix}")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """JSON with NumPy scalars and arrays turned into plain numbers and lists."""
    return write_text_atomic(path, json.dumps(obj, indent=1, default=_plain))


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
