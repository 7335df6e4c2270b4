"""Named training events and their subscribers (CLI progress bar, JSONL log, the training page).

The trainer only calls `bus.emit(name, **fields)`; it never knows who listens.
Every event is a flat JSON-able dict: {"event": name, "time": unix seconds, ...fields}.
"""
from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

RUN_START = "run_start"
STAGE_START = "stage_start"
BATCH_PROGRESS = "batch_progress"
EPOCH_END = "epoch_end"
STAGE_END = "stage_end"
PSEUDO_LABELS = "pseudo_labels"
RUN_END = "run_end"
ERROR = "error"
CANCELLED = "cancelled"
EVENTS = (RUN_START, STAGE_START, BATCH_PROGRESS, EPOCH_END, STAGE_END, PSEUDO_LABELS, RUN_END, ERROR, CANCELLED)

Subscriber = Callable[[dict], None]


class EventBus:
    """Dispatches each event to every subscriber, in subscription order."""

    def __init__(self, subscribers: list[Subscriber] | None = None):
        self.subscribers: list[Subscriber] = list(subscribers or [])

    def subscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.append(subscriber)

    def emit(self, name: str, /, **fields) -> dict:
        if name not in EVENTS:
            raise ValueError(f"unknown event {name!r}")
        event = {"event": name, "time": round(time.time(), 3), **fields}
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

    def __call__(self, event: dict) -> None:
        if event["event"] == BATCH_PROGRESS and event.get("batch", 0) % self.batch_every:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(event) + "\n")


def read_events(path: str | os.PathLike) -> list[dict]:
    """All complete events of a JSONL log (a torn last line, from a crash, is ignored)."""
    return list(iter_events(path))


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

    def __init__(self, stream=sys.stderr, width: int = 30):
        self.stream, self.width = stream, width
        self.stage = ""
        self.total_epochs = 0

    def __call__(self, e: dict) -> None:
        kind = e["event"]
        if kind == RUN_START:
            workers = f" (worker {e['worker_index']} of {len(e['workers'])})" if e.get("workers") else ""
            self._line(f"run {e.get('run_name', '')}{workers}: {e.get('train_rows')} train / {e.get('val_rows')} val rows, "
                       f"{e.get('stages')} stages, {e.get('replicas_in_sync', 1)} replicas in sync\n")
        elif kind == STAGE_START:
            self.stage = f"stage {e['stage'] + 1}/{e['stages']} {e['name']}"
            self.total_epochs = e["epochs"]
        elif kind == BATCH_PROGRESS:
            done = e["batch"] / max(e["batches"], 1)
            bar = "#" * int(done * self.width)
            self._line(f"\r{self.stage} epoch {e['epoch'] + 1}/{self.total_epochs} [{bar:<{self.width}}]")
        elif kind == EPOCH_END:
            self._line(f"\r{self.stage} epoch {e['epoch'] + 1}/{self.total_epochs} ({e.get('steps')} steps) loss {e['loss']:.4f} "
                       f"val {e['val_loss']:.4f} rmse {e['val_rmse_px']:.2f}px{' ' * 10}\n")
        elif kind == PSEUDO_LABELS:
            by = f" by {e['model']}" if e.get("model") else ""
            self._line(f"pseudo-labels: filled {e['filled_values']} values in {e['rows']} rows{by}\n")
        elif kind == RUN_END:
            self._line(f"done in {e['wall_s']:.0f}s: test rmse {e['metrics'].get('test_rmse_px', float('nan')):.2f}px "
                       f"-> {e['model_path']}\n")
        elif kind in (ERROR, CANCELLED):
            self._line(f"\n{kind}: {e.get('message', '')}\n")

    def _line(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
