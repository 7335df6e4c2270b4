"""Files a browser sends or names: uploads stored by content, and server paths confined to the data folders.

A browser reaches the disk only through here. Uploads are stored as `<sha256 prefix>-<name>` under
data/uploads: two sessions uploading different files of the same name never share a file, and a
training run started on an upload reads exactly the bytes that were uploaded. Saving also prunes old
uploads (age and total-size budgets), so visitors cannot fill the disk. A "path on the server" opens
only files inside the app's data folders (data/, ../shared/data, and what the operator adds with
FKS_ALLOWED_DATA_DIRS), after symlinks and '..' are resolved.
"""
from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path

from core.files import write_bytes_atomic
from core.paths import REPO_ROOT, SHARED_DATA, data_dir

#: Uploads older than this (since last saved or used) are deleted when another upload is saved.
UPLOAD_MAX_AGE_S = float(os.environ.get("FKS_UPLOAD_MAX_AGE_H", 24 * 7)) * 3600
#: Total size the uploads folder is pruned to (oldest first) when an upload is saved.
UPLOAD_BUDGET_BYTES = int(float(os.environ.get("FKS_UPLOAD_BUDGET_MB", 2048)) * 2**20)
MAX_NAME_CHARS = 80
#: Extensions kept whole when a long name is shortened (compression is read from the name).
KNOWN_SUFFIXES = (".csv.gz", ".csv", ".gz", ".zip")


class PathNotAllowed(ValueError):
    """A server path outside the data folders, or no such file; the message names no server folder."""


def uploads_dir() -> Path:
    return data_dir() / "uploads"


def stored_name(name: str, digest: str) -> str:
    """`<12 hex of the content hash>-<safe name>`, at most MAX_NAME_CHARS, keeping the extension whole."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(name).name).lstrip(".") or "upload"
    suffix = next((s for s in KNOWN_SUFFIXES if safe.lower().endswith(s)), Path(safe).suffix)
    stem = safe[: len(safe) - len(suffix)] if suffix else safe
    prefix = f"{digest[:12]}-"
    return prefix + stem[: MAX_NAME_CHARS - len(prefix) - len(suffix)] + suffix


def save_upload(content: bytes, name: str, folder: Path | None = None) -> Path:
    """Store uploaded bytes under their content hash (atomically, once), then prune old uploads; the path."""
    folder = Path(folder or uploads_dir())
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / stored_name(name, hashlib.sha256(content).hexdigest())
    if target.is_file() and target.stat().st_size == len(content):
        os.utime(target)  # used again: the newest, last to be pruned
    else:
        write_bytes_atomic(target, content)
    prune_uploads(folder, keep=target)
    return target


def prune_uploads(folder: Path, keep: Path | None = None, max_age_s: float = UPLOAD_MAX_AGE_S,
                  budget_bytes: int = UPLOAD_BUDGET_BYTES, now: float | None = None) -> list[Path]:
    """Delete uploads older than `max_age_s`, then the oldest until the folder fits `budget_bytes`; `keep` stays."""
    now = time.time() if now is None else now
    files = sorted((p for p in Path(folder).iterdir() if p.is_file()), key=lambda p: p.stat().st_mtime)
    removed, total = [], sum(p.stat().st_size for p in files)
    for path in files:
        if keep is not None and path == keep:
            continue
        if now - path.stat().st_mtime > max_age_s or total > budget_bytes:
            total -= path.stat().st_size
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def allowed_data_dirs() -> list[Path]:
    """The folders a server path may point into: data/, ../shared/data, and FKS_ALLOWED_DATA_DIRS (os.pathsep list)."""
    extra = [p for p in os.environ.get("FKS_ALLOWED_DATA_DIRS", "").split(os.pathsep) if p.strip()]
    return [Path(p).resolve() for p in (str(data_dir()), str(SHARED_DATA), *extra)]


def resolve_server_path(text: str) -> Path:
    """The file a person typed, if it lies inside an allowed data folder (symlinks and '..' resolved
    first; relative paths start at the repository); else PathNotAllowed, naming no server folder."""
    path = Path(text.strip())
    try:
        resolved = (path if path.is_absolute() else REPO_ROOT / path).resolve()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte: no such file
        raise PathNotAllowed(f"There is no file {_shown(text)} in the app's data folders.") from None
    if not any(resolved.is_relative_to(folder) for folder in allowed_data_dirs()):
        raise PathNotAllowed("Only files inside the app's data folders can be opened (data/ and ../shared/data; "
                             "the operator can allow more folders with FKS_ALLOWED_DATA_DIRS).")
    try:
        is_file = resolved.is_file()
    except (OSError, ValueError):
        is_file = False
    if not is_file:
        raise PathNotAllowed(f"There is no file {_shown(text)} in the app's data folders.")
    return resolved


def _shown(text: str, limit: int = 80) -> str:
    """What a person typed, quoted and cut to `limit` characters for a message."""
    text = text.strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")
