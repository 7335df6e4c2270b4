"""Webcam clips kept on the server for one browser session, under the app's data folder.

A clip's file name is a random token chosen here (never a name a browser sends). The recorder
writes `<token>.part.mp4` and `finish_recording()` renames it to `<token>.mp4`, so a finished clip
is never half-written, and the last clip stays downloadable while the next one is recorded. A
clip is removed when its `SessionClip` is discarded or garbage-collected (Streamlit drops a
session's state a while after its tab closes), and `sweep()` removes any clip older than
CLIP_TTL_S (a server that was killed leaves no clip behind for good).
"""
from __future__ import annotations

import os
import secrets
import time
import weakref
from pathlib import Path

from core.paths import data_dir

#: How long a recorded clip stays on the server.
CLIP_TTL_S = 30 * 60
CLIP_SUFFIX = ".mp4"


def clips_dir() -> Path:
    return data_dir() / "clips"


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


class SessionClip:
    """The one clip a browser session may keep: recorded by the webcam stream, downloaded from the page."""

    def __init__(self, folder: Path | None = None):
        self.folder = Path(folder) if folder is not None else clips_dir()
        token = secrets.token_hex(8)
        self.path = self.folder / f"{token}{CLIP_SUFFIX}"
        self.recording_path = self.folder / f"{token}.part{CLIP_SUFFIX}"
        self.recording = False  # set by the recorder's thread between start_recording and finish_recording
        self._finalizer = weakref.finalize(self, _remove, self.path, self.recording_path)

    @property
    def ready(self) -> bool:
        """A finished recording is there to download."""
        return self.path.is_file()

    @property
    def finished_at(self) -> float | None:
        """When the clip on offer was finished (its file's mtime), None without one: tells a new clip from the last."""
        try:
            return self.path.stat().st_mtime
        except FileNotFoundError:
            return None

    def start_recording(self) -> Path:
        """The path the recorder writes to; the finished clip stays offered until the new one replaces it."""
        _remove(self.recording_path)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.recording = True
        return self.recording_path

    def finish_recording(self) -> None:
        """The recorder closed its file: make it the session's clip (idempotent)."""
        if self.recording_path.is_file():
            os.replace(self.recording_path, self.path)
        self.recording = False

    def abandon_recording(self) -> None:
        """The recorder could not finish its file: drop it and keep offering the last clip."""
        _remove(self.recording_path)
        self.recording = False

    def discard(self) -> None:
        _remove(self.path, self.recording_path)
        self.recording = False


def sweep(folder: Path | None = None, ttl_s: float = CLIP_TTL_S, now: float | None = None) -> int:
    """Remove clips (finished or not) last written more than `ttl_s` ago; returns how many."""
    folder = Path(folder) if folder is not None else clips_dir()
    now = time.time() if now is None else now
    removed = 0
    for path in folder.glob(f"*{CLIP_SUFFIX}") if folder.is_dir() else ():
        try:
            if now - path.stat().st_mtime > ttl_s:
                path.unlink()
                removed += 1
        except FileNotFoundError:  # another session's sweep got there first
            pass
    return removed
