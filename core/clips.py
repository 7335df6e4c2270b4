"""Webcam clips kept on the server for one browser session, under the app's data folder.

A clip's file name is a random token chosen here (never a name a browser sends). Each recording
writes `<token>.<n>.part.mp4` and `finish_recording()` renames it to `<token>.mp4`, so a finished clip
is never half-written, and the last clip stays downloadable while the next one is recorded. A
clip is removed when its `SessionClip` is discarded or garbage-collected (Streamlit drops a
session's state a while after its tab closes), and `sweep()` removes any clip older than
CLIP_TTL_S (a server that was killed leaves no clip behind for good).
"""
from __future__ import annotations

import os
import secrets
import threading
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
    """The one clip a browser session may keep: recorded by the webcam stream, downloaded from the page.

    Each recording writes a file of its own (`<token>.<n>.part.mp4`): a STOP's recorder may still be
    finishing its file when the next START's recorder begins, and neither may touch the other's. The
    newest recording to finish becomes the clip; an older one finishing later is dropped."""

    def __init__(self, folder: Path | None = None):
        self.folder = Path(folder) if folder is not None else clips_dir()
        self._token = secrets.token_hex(8)
        self.path = self.folder / f"{self._token}{CLIP_SUFFIX}"
        self._lock = threading.Lock()  # recorders start and finish on the stream's threads, the page reads
        self._started = 0  # recordings handed out
        self._shown = 0  # the recording the clip on offer came from
        self._active: dict[Path, int] = {}  # files being written -> their recording's number
        self._finalizer = weakref.finalize(self, _remove_session_files, self.folder, self._token)

    @property
    def ready(self) -> bool:
        """A finished recording is there to download."""
        return self.path.is_file()

    @property
    def recording(self) -> bool:
        """A recorder is writing (or finishing) a file of this session."""
        return bool(self._active)

    @property
    def finished_at(self) -> float | None:
        """When the clip on offer was finished (its file's mtime), None without one: tells a new clip from the last."""
        try:
            return self.path.stat().st_mtime
        except FileNotFoundError:
            return None

    def start_recording(self) -> Path:
        """A new file for a recorder to write; the clip on offer stays until a newer recording replaces it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._started += 1
            path = self.folder / f"{self._token}.{self._started}.part{CLIP_SUFFIX}"
            self._active[path] = self._started
        return path

    def finish_recording(self, path: Path) -> None:
        """The recorder closed `path`: it becomes the session's clip, unless a newer recording already did."""
        with self._lock:
            number = self._active.pop(path, 0)
            if number > self._shown and path.is_file():
                os.replace(path, self.path)
                self._shown = number
                return
        _remove(path)

    def abandon_recording(self, path: Path) -> None:
        """The recorder could not finish `path` (or wrote nothing): drop it and keep offering the last clip."""
        with self._lock:
            self._active.pop(path, None)
        _remove(path)

    def discard(self) -> None:
        with self._lock:
            self._active.clear()
        _remove_session_files(self.folder, self._token)


def _remove_session_files(folder: Path, token: str) -> None:
    """A session's clip and every file its recorders left (finished or not)."""
    _remove(folder / f"{token}{CLIP_SUFFIX}", *folder.glob(f"{token}.*.part{CLIP_SUFFIX}"))


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
