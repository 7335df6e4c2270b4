"""Which model the app uses, and what a run may be called: the one home of the run-name rules and
the active-model pointer (runs/active_model.txt), shared by the pages, `python -m trainer` and `python -m core`.

Switching writes the pointer atomically; pages re-read it on every run, so a switch takes effect
without a restart. Nothing here imports Streamlit, `trainer` or Keras: a model is checked through its ONNX twin.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from core.files import write_text_atomic
from core.model import ModelError, validate_model
from core.paths import SHIPPED_MODEL, runs_dir

#: The file in the runs folder naming the active model.
POINTER_NAME = "active_model.txt"
#: `activate` and `python -m trainer activate` take this name to mean the shipped model.
SHIPPED_NAME = "shipped"
#: Names the registry gives its own meaning in the runs folder: never run names. The pointer's temporary
#: name starts with "." (core.files.atomic_path), which no run name can.
RESERVED_RUN_NAMES = frozenset({SHIPPED_NAME, POINTER_NAME})
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def safe_run_dir(name: str, root: str | os.PathLike | None = None) -> Path:
    """runs/<name>, refusing names that could escape the runs directory ('..', '/', etc.) or that the registry uses."""
    # fullmatch: a pattern's "$" also matches before a final newline ("shipped\n" would pass)
    if not isinstance(name, str) or not RUN_NAME.fullmatch(name) or ".." in name:
        raise ValueError(f"Run name {name!r} is not allowed: use letters, digits, '-', '_' or '.' (max 64).")
    if name.lower() in RESERVED_RUN_NAMES:
        raise ValueError(f"Run name {name!r} is reserved by the model registry; choose another name.")
    root = Path(root or runs_dir()).resolve()
    path = (root / name).resolve()
    if path.parent != root:
        raise ValueError(f"Run name {name!r} would leave the runs directory.")
    return path


def active_model_path() -> Path:
    """The model the app uses: FKS_MODEL if set, else the one named in runs/active_model.txt, else the shipped one."""
    if os.environ.get("FKS_MODEL"):
        return Path(os.environ["FKS_MODEL"])
    pointer = runs_dir() / POINTER_NAME
    try:
        named = Path(pointer.read_text().strip())
        if named.is_file():
            return named
    except (OSError, UnicodeDecodeError):  # unreadable or garbled pointer: fall back, never crash a page
        pass
    return SHIPPED_MODEL


def active_run(root: str | os.PathLike | None = None, active: str | os.PathLike | None = None) -> str | None:
    """The name of the run in `root` whose model is `active` (default: the model the app uses), or None (the
    shipped model, or a file elsewhere)."""
    root = Path(root or runs_dir()).resolve()
    active = Path(active or active_model_path()).resolve()
    return active.parent.name if active.parent.parent == root and active.name == "model.keras" else None


def activate(run_name: str) -> Path:
    """Make runs/<run_name>/model.keras (or the shipped model, for 'shipped') active, after checking
    that its ONNX twin is current and gives finite keypoints inside the crop (core.model.validate_model).
    `python -m trainer activate` makes a missing or stale twin first."""
    root = runs_dir()
    target = SHIPPED_MODEL if run_name == SHIPPED_NAME else safe_run_dir(run_name, root) / "model.keras"
    validate_model(target)  # raises ModelError with a clear message when missing, unreadable or unusable
    root.mkdir(parents=True, exist_ok=True)
    pointer = root / POINTER_NAME
    if pointer.is_dir():
        raise ModelError(f"The runs folder holds a folder named {POINTER_NAME} (a run made before that name was "
                         "reserved): rename it, then activate again.")
    write_text_atomic(pointer, str(target.resolve()))
    return target
