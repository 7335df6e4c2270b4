"""What a run folder says: its status, progress, loss curves, and the table of all runs (the training page's views).

Reads only: the files trainer.runs writes (config.json, events.jsonl, job.json, model.json). Starting
and cancelling the training processes is trainer.jobs.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

from core.card import DataSummary, ModelCard, card_path_for, read_card
from core.paths import REPO_ROOT, runs_dir
from core.registry import safe_run_dir
from trainer import events as ev
from trainer.config import RecipeConfig
from trainer.runs import MODEL_FILE


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, exited but not reaped, does not)."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def process_identity(pid: int) -> dict:
    """What job.json records about a training process: a pid alone may name any process once it is reused
    (or when the file is edited), so its start time and command line go with it."""
    process = psutil.Process(pid)
    return {"pid": pid, "create_time": process.create_time(), "cmdline": process.cmdline()}


def job_process(job: object) -> psutil.Process | None:
    """The live process job.json names, when its pid, start time and command line all match, else None.
    Only such a process may be reported as training a run or be signalled by Cancel."""
    if not isinstance(job, dict):
        return None
    pid, created, cmdline = job.get("pid"), job.get("create_time"), job.get("cmdline")
    if (isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0 or isinstance(created, bool)
            or not isinstance(created, (int, float)) or not isinstance(cmdline, list)):
        return None
    try:
        process = psutil.Process(pid)
        if (abs(process.create_time() - created) > 0.01 or process.cmdline() != cmdline
                or process.status() == psutil.STATUS_ZOMBIE):
            return None
    except psutil.Error:
        return None
    return process


def job_of(path: Path) -> dict:
    """runs/<name>/job.json: the identity of the process training the run ({} when none or unreadable)."""
    try:
        job = json.loads((path / "job.json").read_text())
    except (OSError, ValueError):
        return {}
    return job if isinstance(job, dict) else {}


def run_problem(path: Path) -> str | None:
    """Why a run folder cannot be listed as a run (a name no run may have, a symlink, its config.json or
    model.json unreadable), or None."""
    path = Path(path)
    if path.is_symlink():
        return "the run folder is a symbolic link; runs are plain folders inside the runs folder"
    try:
        safe_run_dir(path.name, path.parent)
    except ValueError as exc:
        return f"{exc} Rename the folder to list it as a run."
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
    if job_process(job_of(path)) is not None:
        return "running"
    if problem:
        return "broken"
    last = next((e["event"] for e in reversed(ev.read_events(path / "events.jsonl"))
                 if e["event"] in (ev.CANCELLED, ev.ERROR, ev.RUN_END)), None)
    return {ev.CANCELLED: "cancelled", ev.ERROR: "failed"}.get(last or "", "stopped")


#: An absolute path's folders (the file name after them stays): what a log shown in the page leaves out.
_FOLDERS = re.compile(r"(?<![\w.~-])/(?:[^/\s'\",:]+/)+")


def log_tail(path: Path, lines: int = 15) -> str:
    """The last lines of a run's log.txt without server paths: the runs folder and repository become
    relative, any other absolute path keeps only its file name (tracebacks name library files)."""
    try:
        text = (Path(path) / "log.txt").read_text(errors="replace")
    except OSError:
        return ""
    tail = "\n".join(text.splitlines()[-lines:])
    for folder, shown in ((Path(path).parent, "runs"), (REPO_ROOT, ".")):
        tail = tail.replace(str(folder.resolve()), shown).replace(str(folder), shown)
    return _FOLDERS.sub(".../", tail)


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
    stage = next((e for e in reversed(events) if e["event"] == ev.STAGE_START), None)
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
