"""Which model the app uses. Switching writes runs/active_model.txt atomically; pages re-read it
on every run, so a switch takes effect without a restart."""
from __future__ import annotations

import os
from pathlib import Path

from core.model import load_keras_model
from core.paths import SHIPPED_MODEL, runs_dir


def activate(run_name: str) -> Path:
    """Make runs/<run_name>/model.keras (or the shipped model, for 'shipped') active, after checking it loads."""
    root = runs_dir()
    if run_name == "shipped":
        target = SHIPPED_MODEL
    else:
        from trainer.runs import safe_run_dir  # name checks live with the runs

        target = safe_run_dir(run_name, root) / "model.keras"
    load_keras_model(target)  # raises ModelError with a clear message when missing or broken
    root.mkdir(parents=True, exist_ok=True)
    pointer = root / "active_model.txt"
    tmp = pointer.with_name(pointer.name + ".tmp")
    tmp.write_text(str(target.resolve()))
    os.replace(tmp, pointer)
    return target
