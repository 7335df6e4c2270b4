"""Run folders: config, JSONL events, per-epoch checkpoint + state, final model and card.

    runs/<name>/config.json      resolved RecipeConfig
    runs/<name>/events.jsonl     every event (trainer.events)
    runs/<name>/state.json       {"stage": k, "epoch": e}: where a resume starts
    runs/<name>/checkpoint.keras model + optimizer after the last finished epoch
    runs/<name>/model.keras/.onnx/.json   the finished model, its ONNX twin and its card
    runs/<name>/test_faces.npz   a few held-out faces with true and predicted keypoints
    runs/<name>/CANCEL           present = please stop (the training page writes it)
    runs/<name>/job.json         the training process's pid, start time and command line (trainer.runfolders)
    runs/<name>/writer.lock      flock'ed by the one process training the run (released when it ends or dies)

Whole files (config, state, checkpoint, model, card, job.json) are written through core.files.atomic_path, so a
crash leaves the previous version; events.jsonl is appended one flushed line at a time (a torn last line is
skipped by its reader), and CANCEL and writer.lock are markers, not content.
Run names come from people: core.registry.safe_run_dir keeps them inside the runs directory.
"""
from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

import numpy as np

from core.card import ModelCard
from core.files import atomic_path, write_json_atomic
from trainer.config import Stage
from trainer.data import KeypointData

#: A finished run's model (its card beside it: core.card.card_path_for).
MODEL_FILE = "model.keras"


class RunBusyError(RuntimeError):
    """Another process is training (writing) this run folder."""


class RunStateError(ValueError):
    """A run folder whose resume point cannot be trusted (the message says why and what to do)."""


class Run:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = None

    def lock_writer(self) -> None:
        """Become the run folder's only writer, or raise RunBusyError. The lock (flock) belongs to this
        process: the OS drops it when the process exits or is killed, so a crash never leaves it stuck."""
        fd = os.open(self.path / "writer.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunBusyError(f"Run '{self.path.name}' is being trained by another process; wait for it to end or "
                               "cancel it (Training page) before resuming it.") from None
        self._lock_fd = fd

    def unlock_writer(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    events_path = property(lambda self: self.path / "events.jsonl")
    state_path = property(lambda self: self.path / "state.json")
    checkpoint_path = property(lambda self: self.path / "checkpoint.keras")
    model_path = property(lambda self: self.path / MODEL_FILE)
    cancel_path = property(lambda self: self.path / "CANCEL")
    pseudo_path = property(lambda self: self.path / "pseudo_labels.npz")

    def state(self) -> dict:
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {"stage": 0, "epoch": 0}

    def resume_point(self, stages: list[Stage]) -> dict:
        """state.json checked against the recipe's `stages` and the checkpoint beside it, or RunStateError: a
        resume point that is not two whole numbers, lies outside the recipe, names a checkpoint that is
        missing (its weights would be random), or belongs to a finished run (resuming would rewrite its model)."""
        name = self.path.name
        if not self.state_path.exists():
            return {"stage": 0, "epoch": 0}
        fresh = f"delete runs/{name}/state.json and checkpoint.keras to train it from the start, or use a new run name"
        try:
            state = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            raise RunStateError(f"Run '{name}': state.json is unreadable; {fresh}.") from None
        if not isinstance(state, dict):
            raise RunStateError(f"Run '{name}': state.json is not a resume point (a JSON object); {fresh}.")
        if state.get("finished"):
            raise RunStateError(f"Run '{name}' is finished (its model and card are written); training it again would "
                                "replace them. Train a new run under another name.")
        stage, epoch = state.get("stage"), state.get("epoch")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (stage, epoch)):
            raise RunStateError(f"Run '{name}': state.json resumes at stage {stage!r}, epoch {epoch!r}; both must be "
                                f"whole numbers from 0. {fresh[0].upper()}{fresh[1:]}.")
        assert isinstance(stage, int) and isinstance(epoch, int)
        if stage > len(stages) or (stage == len(stages) and epoch) or (stage < len(stages)
                                                                       and epoch > stages[stage].epochs):
            raise RunStateError(f"Run '{name}': state.json resumes at stage {stage}, epoch {epoch}, past the end of "
                                f"its recipe ({len(stages)} stages); {fresh}.")
        if (stage, epoch) != (0, 0) and not self.checkpoint_path.is_file():
            raise RunStateError(f"Run '{name}': state.json resumes at stage {stage}, epoch {epoch}, but "
                                f"checkpoint.keras is missing, so its weights are lost; {fresh}.")
        return {**state, "stage": stage, "epoch": epoch}

    def wall_s(self, started: float, now: float) -> float:
        """Training time over every segment of the run: the earlier ones (each start or resume until its last
        event, from events.jsonl) plus this one, which started at `started`."""
        from trainer import events as ev

        segments: list[list[float]] = []
        for event in ev.read_events(self.events_path):
            t = event.get("time")
            if isinstance(t, (int, float)) and event.get("event") == ev.RUN_START:
                segments.append([t, t])
            elif isinstance(t, (int, float)) and segments and event.get("event") != ev.ERROR:
                segments[-1][1] = t  # not ERROR: a refused resume (state.json, lock) adds one without training
        earlier = segments[:-1]  # the last RUN_START is this segment's
        return sum(last - first for first, last in earlier) + (now - started)

    def cancel_requested(self) -> bool:
        return self.cancel_path.exists()

    def recorded_precision(self) -> dict:
        """The precision this run chose when it started (config.json's record), or {} for a new run."""
        try:
            return dict(json.loads((self.path / "config.json").read_text()).get("precision") or {})
        except (OSError, ValueError, AttributeError):
            return {}

    def record_precision(self, precision: dict) -> None:
        """Add the run's precision choice to its config.json (written before the choice was made)."""
        path = self.path / "config.json"
        write_json_atomic(path, {**json.loads(path.read_text()), "precision": precision})

    def write_config(self, config) -> None:
        path = self.path / "config.json"
        if not path.exists():
            write_json_atomic(path, config.to_dict())

    def write_job(self) -> None:
        """job.json identifies the training process (trainer.runfolders.job_process), so the page sees CLI runs
        as running too (one at a time) and Cancel signals this process and no other."""
        from trainer.runfolders import process_identity

        write_json_atomic(self.path / "job.json", {**process_identity(os.getpid()), "started": time.time()})

    def save_checkpoint(self, model, stage: int, epoch: int, stages: int) -> None:
        """Checkpoint first, then the state that points at it: a crash between the two only repeats an epoch."""
        with atomic_path(self.checkpoint_path) as tmp:
            model.save(str(tmp))
        write_json_atomic(self.state_path, {"stage": stage, "epoch": epoch, "stages": stages})

    def save_pseudo_labels(self, data, filled: np.ndarray | None = None) -> None:
        """The pseudo-labelled rows; `filled` (N, 15) marks the points the model drew (the Dataset page
        shows them apart from the real ones), `frames` names their source frames when the data has them."""
        extra = {} if data.frames is None else {"frames": data.frames.astype(str)}
        if filled is not None:
            extra["filled"] = filled
        with atomic_path(self.pseudo_path) as tmp:
            np.savez_compressed(tmp, images=data.images, keypoints=data.keypoints, **extra)

    def save_test_faces(self, images, truth, predicted) -> None:
        """A few held-out faces with true and predicted keypoints, for the run's card on the training page."""
        with atomic_path(self.path / "test_faces.npz") as tmp:
            np.savez_compressed(tmp, images=images, truth=truth, predicted=predicted)

    def load_pseudo_labels(self):
        if not self.pseudo_path.is_file():
            return None
        with np.load(self.pseudo_path) as z:
            return KeypointData(z["images"], z["keypoints"])

    def finish(self, card: ModelCard) -> ModelCard:
        """Write the model card (trainer.cards.run_card) beside model.keras and mark the run finished."""
        card.write(self.model_path)
        write_json_atomic(self.state_path, {**self.state(), "finished": True})
        return card
