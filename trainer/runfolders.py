"""What a run folder says: its status, progress, loss curves, and the table of all runs (the training page's views).

Reads only: the files trainer.runs writes (config.json, events.jsonl, job.json, model.json). Starting
and cancelling the training processes is trainer.jobs.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.card import DataSummary, ModelCard, card_path_for, read_card
from core.paths import runs_dir
from trainer import events as ev
from trainer.config import RecipeConfig
from trainer.runs import MODEL_FILE


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, exited but not reaped, does not)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:  # a zombie (exited, not yet reaped by us) is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"
    except OSError:
        return True


def job_of(path: Path) -> dict:
    """runs/<name>/job.json: the pid of the process training the run ({} when none)."""
    try:
        return json.loads((path / "job.json").read_text())
    except (OSError, ValueError):
        return {}


def run_problem(path: Path) -> str | None:
    """Why a run folder cannot be listed as a run (its config.json or model.json is unreadable), or None."""
    path = Path(path)
    try:
        RecipeConfig.from_dict(json.loads((path / "config.json").read_text()))
    except OSError:
        return "config.json is missing or unreadable"
    except ValueError as exc:
        return f"config.json is not a valid run configuration: {exc}"
    if card_path_for(path / MODEL_FILE).exists():
        try:
            card = ModelCard.read(path / MODEL_FILE)
        except (OSError, ValueError) as exc:
            return f"model.json (the model card) is unreadable: {exc}"
        except TypeError:  # a field of the wrong type (e.g. "data": 3)
            return "model.json (the model card) is not a model card"
        if not (isinstance(card.metrics, dict) and isinstance(card.data, DataSummary)
                and isinstance(card.end_to_end, dict)):
            return "model.json (the model card) is not a model card"
    return None


def status(path: Path) -> str:
    """'running', 'finished', 'cancelled', 'failed', 'stopped' (interrupted; resumable) or 'broken' (run_problem)."""
    path = Path(path)
    problem = run_problem(path)
    if problem is None and card_path_for(path / MODEL_FILE).is_file():
        return "finished"
    job = job_of(path)
    if job.get("pid") and pid_alive(job["pid"]):
        return "running"
    if problem:
        return "broken"
    last = next((e["event"] for e in reversed(ev.read_events(path / "events.jsonl"))
                 if e["event"] in (ev.CANCELLED, ev.ERROR, ev.RUN_END)), None)
    return {ev.CANCELLED: "cancelled", ev.ERROR: "failed"}.get(last, "stopped")


@dataclass
class Progress:
    stage: int
    stages: int
    stage_name: str
    epoch: int
    epochs: int
    fraction: float
    eta_s: float | None


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
                    min(done / total, 1.0), eta)


def pseudo_labels(path: Path) -> str | None:
    """What a run's pseudo-label stage did or will do, in a sentence for the training page; None when the
    run has no pseudo stage."""
    events = ev.read_events(Path(path) / "events.jsonl")
    starts = [e for e in events if e["event"] == ev.RUN_START]
    names = starts[-1].get("stage_names", []) if starts else []
    first = next((i for i, n in enumerate(names) if n.startswith("pseudo")), None)
    if first is None:
        return None
    done = next((e for e in reversed(events) if e["event"] == ev.PSEUDO_LABELS), None)
    if done is None:
        after = f"the model after stage {first} ({names[first - 1]})" if first else "the starting model"
        return f"Pseudo-labelling: {starts[-1].get('incomplete_rows', 0)} incomplete rows will be labelled by {after}."
    text = (f"Pseudo-labelling: {done['rows']} incomplete rows labelled ({done['filled_values']} values filled) "
            f"by {done.get('model', 'the model')}")
    stage = next((e for e in reversed(events) if e["event"] in (ev.STAGE_START, ev.RUN_END)), None)
    if stage is not None and stage.get("phase") == "pseudo":
        text += f"; now training on {done.get('complete_rows', '?')} complete + {done['rows']} pseudo-labelled rows"
    elif stage is not None and stage.get("phase") == "final":
        text += "; now the final cycle, on the original rows"
    return text + "."


def precision(path: Path) -> str | None:
    """The compute precision a run trains in and why (config.json's record), None for older runs."""
    try:
        record = json.loads((Path(path) / "config.json").read_text()).get("precision") or {}
    except (OSError, ValueError, AttributeError):
        return None
    return record.get("reason") if isinstance(record, dict) else None


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
        card = ModelCard() if problem else read_card(path / MODEL_FILE)
        rows.append({"run": path.name, "status": status(path), "problem": problem,
                     "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(config_path.stat().st_mtime)),
                     "train rows": card.data.train_rows,
                     "test RMSE px": card.metrics.get("test_rmse_px"),
                     "NME": card.end_to_end.get("nme"),
                     "wall s": card.wall_s})
    return pd.DataFrame(rows, columns=["run", "status", "started", "train rows", "test RMSE px", "NME", "wall s", "problem"])
