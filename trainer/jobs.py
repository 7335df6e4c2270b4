"""Training runs as background jobs: start, watch, cancel, list. Used by the training page.

A job is `python -m trainer train --run NAME` in its own process session, so it outlives page
reloads, closed browsers and other users' sessions. The page and the CLI make the same run
folders (trainer.runs); every training process writes runs/<name>/job.json with its pid, and a
job started here also keeps its stdout/stderr in runs/<name>/log.txt.
One run trains at a time, whoever started it (checked through the pids of unfinished runs).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.paths import REPO_ROOT, runs_dir
from core.registry import safe_run_dir
from trainer import events as ev
from trainer.runs import Run, write_json_atomic


class BusyError(RuntimeError):
    """Another training run is in progress."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:  # a zombie (exited, not yet reaped by us) is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"
    except OSError:
        return True


def _job(path: Path) -> dict:
    try:
        return json.loads((path / "job.json").read_text())
    except (OSError, ValueError):
        return {}


def run_problem(path: Path) -> str | None:
    """Why a run folder cannot be listed as a run (its config.json or model.json is unreadable), or None."""
    from trainer.recipe import RecipeConfig

    path = Path(path)
    try:
        RecipeConfig.from_dict(json.loads((path / "config.json").read_text()))
    except OSError:
        return "config.json is missing or unreadable"
    except ValueError as exc:
        return f"config.json is not a valid run configuration: {exc}"
    if (path / "model.json").exists():
        try:
            card = json.loads((path / "model.json").read_text())
        except (OSError, ValueError) as exc:
            return f"model.json (the model card) is unreadable: {exc}"
        metrics = card.get("metrics", {}) if isinstance(card, dict) else None
        if not (isinstance(metrics, dict) and isinstance(card.get("data", {}), dict)
                and isinstance(metrics.get("end_to_end", {}), dict)):
            return "model.json (the model card) is not a model card"
    return None


def status(path: Path) -> str:
    """'running', 'finished', 'cancelled', 'failed', 'stopped' (interrupted; resumable) or 'broken' (run_problem)."""
    path = Path(path)
    problem = run_problem(path)
    if problem is None and (path / "model.json").is_file():
        return "finished"
    job = _job(path)
    if job.get("pid") and _alive(job["pid"]):
        return "running"
    if problem:
        return "broken"
    last = next((e["event"] for e in reversed(ev.read_events(path / "events.jsonl"))
                 if e["event"] in (ev.CANCELLED, ev.ERROR, ev.RUN_END)), None)
    return {ev.CANCELLED: "cancelled", ev.ERROR: "failed"}.get(last, "stopped")


def running_run(root: Path | None = None) -> str | None:
    root = Path(root or runs_dir())
    for path in sorted(root.glob("*/job.json")):
        if status(path.parent) == "running":
            return path.parent.name
    return None


def start(name: str, config: dict, root: Path | None = None) -> Path:
    """Write the run's config.json and launch the trainer on it in the background."""
    root = Path(root or runs_dir())
    busy = running_run(root)
    if busy:
        raise BusyError(f"Run '{busy}' is still training; wait for it or cancel it first.")
    path = safe_run_dir(name, root)
    if path.exists() and any(path.iterdir()):
        raise ValueError(f"A run named '{name}' already exists; choose another name.")
    from trainer.recipe import RecipeConfig

    resolved = RecipeConfig.from_dict(config).to_dict()  # an untrainable config is refused before the folder exists
    path.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path / "config.json", resolved)
    log = open(path / "log.txt", "ab")
    env = {**os.environ, "FKS_RUNS_DIR": str(root), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "trainer", "train", "--run", name], cwd=REPO_ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    write_json_atomic(path / "job.json", {"pid": process.pid, "started": time.time()})
    return path


def cancel(name: str, root: Path | None = None) -> None:
    """Ask a run to stop: the trainer sees CANCEL at the next batch, keeps its checkpoints, writes no model."""
    path = safe_run_dir(name, root)
    Run(path).cancel_path.touch()
    job = _job(path)
    if job.get("pid") and _alive(job["pid"]):
        os.kill(job["pid"], signal.SIGTERM)


@dataclass
class Progress:
    stage: int
    stages: int
    stage_name: str
    epoch: int
    epochs: int
    fraction: float
    eta_s: float | None
    last_event: dict | None


def progress(path: Path) -> Progress | None:
    """Where a run is, and an ETA from the epochs it has timed so far."""
    events = ev.read_events(Path(path) / "events.jsonl")
    starts = [e for e in events if e["event"] == ev.RUN_START]
    if not starts or run_problem(path):
        return None
    stage_names = starts[-1].get("stage_names", [])
    config = json.loads((Path(path) / "config.json").read_text())
    epochs_per_stage = config.get("epochs_per_stage", 1)
    total = max(len(stage_names) * epochs_per_stage, 1)
    epoch_ends = [e for e in events if e["event"] == ev.EPOCH_END]
    last_stage = next((e for e in reversed(events) if e["event"] == ev.STAGE_START), None)
    done = len({(e["stage"], e["epoch"]) for e in epoch_ends})
    seconds = [e["epoch_s"] for e in epoch_ends[-10:]]
    eta = float(np.mean(seconds)) * (total - done) if seconds else None
    stage = last_stage["stage"] if last_stage else 0
    epoch = epoch_ends[-1]["epoch"] + 1 if epoch_ends and epoch_ends[-1]["stage"] == stage else 0
    return Progress(stage, len(stage_names), last_stage["name"] if last_stage else "", epoch, epochs_per_stage,
                    min(done / total, 1.0), eta, events[-1] if events else None)


def curves(path: Path) -> pd.DataFrame:
    """One row per finished epoch: global epoch number, stage, train/val loss and RMSE in px."""
    rows = {}
    for e in ev.read_events(Path(path) / "events.jsonl"):
        if e["event"] == ev.EPOCH_END:
            rows[(e["stage"], e["epoch"])] = e  # a resumed epoch replaces the interrupted one
    table = pd.DataFrame([rows[k] for k in sorted(rows)])
    if table.empty:
        return pd.DataFrame(columns=["global_epoch", "stage", "loss", "val_loss", "rmse_px", "val_rmse_px"])
    table.insert(0, "global_epoch", np.arange(1, len(table) + 1))
    return table[["global_epoch", "stage", "epoch", "loss", "val_loss", "rmse_px", "val_rmse_px", "lr", "batch_size"]]


def list_runs(root: Path | None = None) -> pd.DataFrame:
    """Every run folder: name, status, when, rows, test RMSE and end-to-end NME when finished, and what is
    wrong with a broken one (problem)."""
    root = Path(root or runs_dir())
    rows = []
    for config_path in sorted(root.glob("*/config.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        path = config_path.parent
        problem = run_problem(path)
        try:
            card = {} if problem else json.loads((path / "model.json").read_text())
        except (OSError, ValueError):
            card = {}
        metrics = card.get("metrics", {})
        rows.append({"run": path.name, "status": status(path), "problem": problem,
                     "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(config_path.stat().st_mtime)),
                     "train rows": card.get("data", {}).get("train_rows"),
                     "test RMSE px": metrics.get("test_rmse_px"),
                     "NME": metrics.get("end_to_end", {}).get("nme"),
                     "wall s": card.get("wall_s")})
    return pd.DataFrame(rows, columns=["run", "status", "started", "train rows", "test RMSE px", "NME", "wall s", "problem"])
