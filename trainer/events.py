"""Training events, typed, and their subscribers (CLI progress bar, JSONL log, the training page's reader).

The trainers (trainer.recipe, trainer.verifier) only call `bus.emit(Event(...))`; they never know who
listens. Each event is a dataclass; on disk (events.jsonl) it is one flat JSON object per line:
{"event": name, "time": unix seconds, ...fields}, read back typed by `load_events`.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TextIO, TypeVar

E = TypeVar("E", bound="Event")


@dataclass(kw_only=True)
class Event:
    """One training event. Fields an older log lacks read as their defaults; unknown keys are kept in `extra`."""

    NAME: ClassVar[str] = ""
    time: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The flat JSON object of events.jsonl."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("time", "extra")}
        return {"event": self.NAME, "time": self.time, **fields, **self.extra}

    @classmethod
    def from_dict(cls: type[E], d: dict[str, Any]) -> E:
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in d.items() if k in names},
                   extra={k: v for k, v in d.items() if k not in names and k != "event"})


@dataclass(kw_only=True)
class RunStart(Event):
    NAME: ClassVar[str] = "run_start"
    run_name: str = ""
    data: str = ""
    rows: int = 0
    train_rows: int = 0
    val_rows: int = 0
    test_rows: int = 0
    incomplete_rows: int = 0
    stages: int = 0
    stage_names: list[str] = field(default_factory=list)
    resumed_from: dict[str, Any] = field(default_factory=dict)
    replicas_in_sync: int = 1
    workers: list[str] = field(default_factory=list)
    worker_index: int = 0
    precision: dict[str, Any] = field(default_factory=dict)  # trainer.precision.PrecisionChoice.to_dict()
    masked_loss: bool = False


@dataclass(kw_only=True)
class StageStart(Event):
    NAME: ClassVar[str] = "stage_start"
    stage: int = 0
    stages: int = 0
    name: str = ""
    phase: str = ""
    lr: float = math.nan
    batch_size: int = 0
    epochs: int = 0
    first_epoch: int = 0
    rows: int = 0


@dataclass(kw_only=True)
class BatchProgress(Event):
    NAME: ClassVar[str] = "batch_progress"
    stage: int = 0
    epoch: int = 0
    batch: int = 0
    batches: int = 0


@dataclass(kw_only=True)
class EpochEnd(Event):
    """Losses in the loss's own units; RMSE in crop pixels (keypoint models; NaN for the verifier, which
    reports `metrics` such as its validation AUC instead)."""

    NAME: ClassVar[str] = "epoch_end"
    stage: int = 0
    epoch: int = 0
    epochs: int = 0
    loss: float = math.nan
    val_loss: float = math.nan
    rmse_px: float = math.nan
    val_rmse_px: float = math.nan
    lr: float = math.nan
    batch_size: int = 0
    steps: int = 0
    epoch_s: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(kw_only=True)
class StageEnd(Event):
    NAME: ClassVar[str] = "stage_end"
    stage: int = 0
    name: str = ""


@dataclass(kw_only=True)
class PseudoLabels(Event):
    NAME: ClassVar[str] = "pseudo_labels"
    rows: int = 0
    filled_values: int = 0
    complete_rows: int = 0
    model: str = ""  # which model drew the labels, in words
    labelling_s: float = 0.0


@dataclass(kw_only=True)
class RunEnd(Event):
    NAME: ClassVar[str] = "run_end"
    model_path: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0


@dataclass(kw_only=True)
class RunError(Event):
    NAME: ClassVar[str] = "error"
    message: str = ""


@dataclass(kw_only=True)
class RunCancelled(Event):
    """`stage` / `epoch`: the resume point (trainer.runs.Run.state) when the run stopped."""

    NAME: ClassVar[str] = "cancelled"
    message: str = ""
    stage: int = 0
    epoch: int = 0


EVENT_TYPES: tuple[type[Event], ...] = (RunStart, StageStart, BatchProgress, EpochEnd, StageEnd, PseudoLabels, RunEnd,
                                        RunError, RunCancelled)
BY_NAME: dict[str, type[Event]] = {t.NAME: t for t in EVENT_TYPES}
RUN_START, STAGE_START, BATCH_PROGRESS, EPOCH_END, STAGE_END, PSEUDO_LABELS, RUN_END, ERROR, CANCELLED = BY_NAME
EVENTS = tuple(BY_NAME)

Subscriber = Callable[[Event], None]


def parse(d: dict[str, Any]) -> Event | None:
    """The typed event of one events.jsonl object, or None for an object that is not a known event."""
    kind = BY_NAME.get(d.get("event", "")) if isinstance(d, dict) else None
    return kind.from_dict(d) if kind else None


class EventBus:
    """Dispatches each event to every subscriber, in subscription order."""

    def __init__(self, subscribers: list[Subscriber] | None = None):
        self.subscribers: list[Subscriber] = list(subscribers or [])

    def subscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.append(subscriber)

    def emit(self, event: E) -> E:
        """Stamp `event` with the time and hand it to every subscriber."""
        if not isinstance(event, EVENT_TYPES):
            raise TypeError(f"not a training event: {event!r}")
        event.time = round(time.time(), 3)
        for subscriber in self.subscribers:
            subscriber(event)
        return event


class JsonlLog:
    """Appends events to a JSONL file, one flushed line each, so a reader never sees half an event.

    Batch progress is thinned to one line per `batch_every` batches to keep the file small.
    """

    def __init__(self, path: str | os.PathLike, batch_every: int = 10):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.batch_every = batch_every

    def __call__(self, event: Event) -> None:
        if isinstance(event, BatchProgress) and event.batch % self.batch_every:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(event.to_dict()) + "\n")


def read_events(path: str | os.PathLike) -> list[dict]:
    """All complete events of a JSONL log as written (a torn last line, from a crash, is ignored)."""
    return list(iter_events(path))


def load_events(path: str | os.PathLike) -> list[Event]:
    """All complete, known events of a JSONL log, typed."""
    return [e for e in map(parse, iter_events(path)) if e is not None]


def iter_events(path: str | os.PathLike) -> Iterator[dict]:
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    yield json.loads(line)
                except ValueError:
                    continue
    except FileNotFoundError:
        return


class ProgressBar:
    """A one-line text progress bar for the CLI: stage, epoch, batches, losses."""

    def __init__(self, stream: TextIO = sys.stderr, width: int = 30):
        self.stream, self.width = stream, width
        self.stage = ""
        self.total_epochs = 0

    def __call__(self, e: Event) -> None:
        if isinstance(e, RunStart):
            workers = f" (worker {e.worker_index} of {len(e.workers)})" if e.workers else ""
            self._line(f"run {e.run_name}{workers}: {e.train_rows} train / {e.val_rows} val rows, "
                       f"{e.stages} stages, {e.replicas_in_sync} replicas in sync\n")
        elif isinstance(e, StageStart):
            self.stage = f"stage {e.stage + 1}/{e.stages} {e.name}"
            self.total_epochs = e.epochs
        elif isinstance(e, BatchProgress):
            bar = "#" * int(e.batch / max(e.batches, 1) * self.width)
            self._line(f"\r{self.stage} epoch {e.epoch + 1}/{self.total_epochs} [{bar:<{self.width}}]")
        elif isinstance(e, EpochEnd):
            rmse = f" rmse {e.val_rmse_px:.2f}px" if math.isfinite(e.val_rmse_px) else ""
            extra = "".join(f" {k} {v:.4f}" for k, v in e.metrics.items())
            self._line(f"\r{self.stage} epoch {e.epoch + 1}/{self.total_epochs} ({e.steps} steps) loss {e.loss:.4f} "
                       f"val {e.val_loss:.4f}{rmse}{extra}{' ' * 10}\n")
        elif isinstance(e, PseudoLabels):
            by = f" by {e.model}" if e.model else ""
            self._line(f"pseudo-labels: filled {e.filled_values} values in {e.rows} rows{by}\n")
        elif isinstance(e, RunEnd):
            test = e.metrics.get("test_rmse_px")
            result = f"test rmse {test:.2f}px" if isinstance(test, (int, float)) else "finished"
            self._line(f"done in {e.wall_s:.0f}s: {result} -> {e.model_path}\n")
        elif isinstance(e, (RunError, RunCancelled)):
            self._line(f"\n{e.NAME}: {e.message}\n")

    def _line(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
