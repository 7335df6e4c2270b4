"""Training runs as background jobs: start and cancel them, and which one is training. Used by the training page.

A job is `python -m trainer train --config runs/NAME/config.json --run NAME` in its own process
session (so the card's `command` names the page's config and reproduces the run), so it outlives page
reloads, closed browsers and other users' sessions. The page and the CLI make the same run
folders (trainer.runs); every training process writes runs/<name>/job.json with its pid, and a
job started here also keeps its stdout/stderr in runs/<name>/log.txt.
One run trains at a time, whoever started it (checked through the pids of unfinished runs).
What a run folder says (status, progress, curves, the list of runs) is trainer.runfolders.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.files import write_json_atomic
from core.paths import REPO_ROOT, runs_dir
from core.registry import safe_run_dir
from trainer.config import RecipeConfig
from trainer.runfolders import job_of, pid_alive, status
from trainer.runs import Run


class BusyError(RuntimeError):
    """Another training run is in progress."""


def running_run(root: Path | None = None) -> str | None:
    root = Path(root or runs_dir())
    for path in sorted(root.glob("*/job.json")):
        if status(path.parent) == "running":
            return path.parent.name
    return None


def train_command(name: str, config_path: Path) -> list[str]:
    """The CLI arguments that train `config_path` as run `name`, the path relative to the repository when inside it
    (the command is run there and recorded in the model card, trainer.cards.command_line)."""
    config_path = Path(config_path).resolve()
    shown = config_path.relative_to(REPO_ROOT) if config_path.is_relative_to(REPO_ROOT) else config_path
    return ["train", "--config", str(shown), "--run", name]


def start(name: str, config: dict, root: Path | None = None) -> Path:
    """Write the run's config.json and launch the trainer on it in the background."""
    root = Path(root or runs_dir())
    busy = running_run(root)
    if busy:
        raise BusyError(f"Run '{busy}' is still training; wait for it or cancel it first.")
    path = safe_run_dir(name, root)
    if path.exists() and any(path.iterdir()):
        raise ValueError(f"A run named '{name}' already exists; choose another name.")
    resolved = RecipeConfig.from_dict(config).to_dict()  # an untrainable config is refused before the folder exists
    path.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path / "config.json", resolved)
    log = open(path / "log.txt", "ab")
    env = {**os.environ, "FKS_RUNS_DIR": str(root), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "trainer", *train_command(name, path / "config.json")],
                               cwd=REPO_ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    write_json_atomic(path / "job.json", {"pid": process.pid, "started": time.time()})
    return path


def cancel(name: str, root: Path | None = None) -> None:
    """Ask a run to stop: the trainer sees CANCEL at the next batch, keeps its checkpoints, writes no model."""
    path = safe_run_dir(name, root)
    Run(path).cancel_path.touch()
    job = job_of(path)
    if job.get("pid") and pid_alive(job["pid"]):
        os.kill(job["pid"], signal.SIGTERM)
