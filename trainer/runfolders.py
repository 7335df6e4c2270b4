"""What a run folder says: its status, progress, loss curves, and the table of all runs (the training page's views).

Reads only: the files trainer.runs writes (config.json, events.jsonl, job.json, model.json). Starting
and cancelling the training processes is trainer.jobs.
"""
from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

from core.card import DataSummary, ModelCard, card_path_for
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


def config_of(path: Path) -> dict:
    """runs/<name>/config.json as written ({} when missing or unreadable: run_problem says why)."""
    return _config(Path(path))[0]


def _config(path: Path) -> tuple[dict, str | None]:
    """(config.json as written, {} when unreadable; why it is no valid run configuration, or None)."""
    try:
        config = json.loads((path / "config.json").read_text())
    except OSError:
        return {}, "config.json is missing or unreadable"
    except ValueError as exc:
        return {}, f"config.json is not a valid run configuration: {exc}"
    try:
        RecipeConfig.from_dict(config)
    except ValueError as exc:
        return config if isinstance(config, dict) else {}, f"config.json is not a valid run configuration: {exc}"
    return config if isinstance(config, dict) else {}, None


def run_problem(path: Path) -> str | None:
    """Why a run folder cannot be listed as a run (a name no run may have, a symlink, its config.json or
    model.json unreadable), or None."""
    return _problem(Path(path))[0]


def _problem(path: Path, read_config: tuple[dict, str | None] | None = None) -> tuple[str | None, ModelCard | None]:
    """(run_problem's answer, the card when the run has a readable one); `read_config`: _config's answer when
    the caller has read config.json already, else it is read here."""
    if path.is_symlink():
        return "the run folder is a symbolic link; runs are plain folders inside the runs folder", None
    try:
        safe_run_dir(path.name, path.parent)
    except ValueError as exc:
        return f"{exc} Rename the folder to list it as a run.", None
    config_problem = (read_config or _config(path))[1]
    if config_problem:
        return config_problem, None
    if not card_path_for(path / MODEL_FILE).exists():
        return None, None
    try:
        card = ModelCard.read(path / MODEL_FILE)
    except (OSError, ValueError) as exc:
        return f"model.json (the model card) is unreadable: {exc}", None
    except TypeError:  # a field of the wrong type (e.g. "data": 3)
        return "model.json (the model card) is not a model card", None
    if not (isinstance(card.metrics.extra, dict) and isinstance(card.data, DataSummary)):
        return "model.json (the model card) is not a model card", None
    return None, card


def _status(path: Path, problem: str | None, card: ModelCard | None, events: Callable[[], list[ev.Event]]) -> str:
    if problem is None and card is not None:
        return "finished"
    if job_process(job_of(path)) is not None:
        return "running"
    if problem:
        return "broken"
    last = next((e for e in reversed(events()) if isinstance(e, (ev.RunCancelled, ev.RunError, ev.RunEnd))), None)
    if isinstance(last, ev.RunCancelled):
        return "cancelled"
    return "failed" if isinstance(last, ev.RunError) else "stopped"


def status(path: Path) -> str:
    """'running', 'finished', 'cancelled', 'failed', 'stopped' (interrupted; resumable) or 'broken' (run_problem)."""
    path = Path(path)
    return _status(path, *_problem(path), lambda: ev.load_events(path / "events.jsonl"))


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


def _progress(events: list[ev.Event], config: dict) -> Progress | None:
    starts = [e for e in events if isinstance(e, ev.RunStart)]
    if not starts:
        return None
    stage_names = starts[-1].stage_names
    epochs_per_stage = config.get("epochs_per_stage", 1)
    total = max(len(stage_names) * epochs_per_stage, 1)
    epoch_ends = [e for e in events if isinstance(e, ev.EpochEnd)]
    last_stage = next((e for e in reversed(events) if isinstance(e, ev.StageStart)), None)
    done = len({(e.stage, e.epoch) for e in epoch_ends})
    seconds = [e.epoch_s for e in epoch_ends[-10:]]
    eta = float(np.mean(seconds)) * (total - done) if seconds else None
    stage = last_stage.stage if last_stage else 0
    epoch = epoch_ends[-1].epoch + 1 if epoch_ends and epoch_ends[-1].stage == stage else 0
    return Progress(stage, len(stage_names), last_stage.name if last_stage else "", epoch, epochs_per_stage,
                    min(done / total, 1.0), eta)


def progress(path: Path) -> Progress | None:
    """Where a run is, and an ETA from the epochs it has timed so far."""
    return read_run(path).progress


def _curves(events: list[ev.Event]) -> pd.DataFrame:
    rows = {}
    for e in events:
        if isinstance(e, ev.EpochEnd):
            rows[(e.stage, e.epoch)] = e.to_dict()  # a resumed epoch replaces the interrupted one
    table = pd.DataFrame([rows[k] for k in sorted(rows)])
    if table.empty:
        return pd.DataFrame(columns=["global_epoch", "stage", "epoch", "loss", "val_loss", "rmse_px", "val_rmse_px",
                                     "lr", "batch_size"])
    table.insert(0, "global_epoch", np.arange(1, len(table) + 1))
    return table[["global_epoch", "stage", "epoch", "loss", "val_loss", "rmse_px", "val_rmse_px", "lr", "batch_size"]]


def pseudo_labels(path: Path) -> str | None:
    """What a run's pseudo-label stage did or will do, in a sentence for the training page; None when the
    run has no pseudo stage."""
    return _pseudo_labels(ev.load_events(Path(path) / "events.jsonl"))


def _pseudo_labels(events: list[ev.Event]) -> str | None:
    starts = [e for e in events if isinstance(e, ev.RunStart)]
    names = starts[-1].stage_names if starts else []
    first = next((i for i, n in enumerate(names) if n.startswith("pseudo")), None)
    if first is None:
        return None
    done = next((e for e in reversed(events) if isinstance(e, ev.PseudoLabels)), None)
    if done is None:
        after = f"the model after stage {first} ({names[first - 1]})" if first else "the starting model"
        return f"Pseudo-labelling: {starts[-1].incomplete_rows} incomplete rows will be labelled by {after}."
    text = (f"Pseudo-labelling: {done.rows} incomplete rows labelled ({done.filled_values} values filled) "
            f"by {done.model or 'the model'}")
    stage = next((e for e in reversed(events) if isinstance(e, (ev.StageStart, ev.RunEnd))), None)
    if isinstance(stage, ev.StageStart) and stage.phase == "pseudo":
        text += f"; now training on {done.complete_rows} complete + {done.rows} pseudo-labelled rows"
    elif isinstance(stage, ev.StageStart) and stage.phase == "final":
        text += "; now the final cycle, on the original rows"
    return text + "."


def precision(path: Path) -> str | None:
    """The compute precision a run trains in and why (config.json's record), None for older runs."""
    return _precision(config_of(path))


def _precision(config: dict) -> str | None:
    record = config.get("precision")
    return record.get("reason") if isinstance(record, dict) else None


def curves(path: Path) -> pd.DataFrame:
    """One row per finished epoch: global epoch number, stage, train/val loss and RMSE in px."""
    return _curves(ev.load_events(Path(path) / "events.jsonl"))


@dataclass
class RunView:
    """Everything the training page draws about one run, from one read of its folder (events.jsonl,
    config.json, model.json and job.json once each), so a live refresh reads each file once."""

    name: str
    status: str
    problem: str | None
    config: dict
    card: ModelCard | None
    progress: Progress | None
    curves: pd.DataFrame
    #: The message of the run's last error event, if any.
    error: str | None
    #: What its pseudo-label stage did or will do (pseudo_labels), and its compute precision's reason (precision).
    pseudo_labels: str | None
    precision: str | None

    @property
    def loss(self) -> str:
        """The loss the run trains with (trainer.losses), for the chart's axis."""
        return str(self.config.get("loss", "mse"))


def read_run(path: Path) -> RunView:
    """One read of a run folder (see RunView)."""
    path = Path(path)
    read_config = _config(path)
    config = read_config[0]
    problem, card = _problem(path, read_config)
    events = ev.load_events(path / "events.jsonl")
    errors = [e for e in events if isinstance(e, ev.RunError)]
    return RunView(name=path.name, status=_status(path, problem, card, lambda: events), problem=problem,
                   config=config, card=card, progress=None if problem else _progress(events, config),
                   curves=_curves(events), error=errors[-1].message if errors else None,
                   pseudo_labels=_pseudo_labels(events), precision=_precision(config))


def list_runs(root: Path | None = None) -> pd.DataFrame:
    """Every run folder: name, status, when, rows, test RMSE and end-to-end NME when finished, and what is
    wrong with a broken one (problem)."""
    root = Path(root or runs_dir())
    rows = []
    for config_path in sorted(root.glob("*/config.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        path = config_path.parent
        problem, read = _problem(path)
        card = read or ModelCard()
        rows.append({"run": path.name, "problem": problem,
                     "status": _status(path, problem, read, partial(ev.load_events, path / "events.jsonl")),
                     "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(config_path.stat().st_mtime)),
                     "train rows": card.data.train_rows,
                     "test RMSE px": card.metrics.test_rmse_px,
                     "NME": card.end_to_end.nme,
                     "wall s": card.wall_s})
    return pd.DataFrame(rows, columns=["run", "status", "started", "train rows", "test RMSE px", "NME", "wall s", "problem"])
