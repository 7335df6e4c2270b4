"""Run folders: config, JSONL events, per-epoch checkpoint + state, final model and card.

    runs/<name>/config.json      resolved RecipeConfig
    runs/<name>/events.jsonl     every event (trainer.events)
    runs/<name>/state.json       {"stage": k, "epoch": e}: where a resume starts
    runs/<name>/checkpoint.keras model + optimizer after the last finished epoch
    runs/<name>/model.keras/.onnx/.json   the finished model, its ONNX twin and its card
    runs/<name>/test_faces.npz   a few held-out faces with true and predicted keypoints
    runs/<name>/CANCEL           present = please stop (the training page writes it)
    runs/<name>/job.json         the training process's pid (trainer.jobs reads it)
    runs/<name>/writer.lock      flock'ed by the one process training the run (released when it ends or dies)

Every file is written to a temp name and renamed, so a crash leaves the previous version.
Run names come from people: core.registry.safe_run_dir keeps them inside the runs directory.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from core.model import card_path_for
from core.schema import KEYPOINT_NAMES

def write_json_atomic(path: Path, obj: object) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=_json_default))
    os.replace(tmp, path)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def face_offset_p99(train) -> float:
    """99th percentile (crop px) of the distance from each training face's centroid to the mean face's centroid."""
    keypoints = train.keypoints[~train.is_copy]
    centroids = np.nanmean(keypoints, axis=1)
    offsets = np.hypot(*(centroids - np.nanmean(centroids, axis=0)).T)
    return round(float(np.nanpercentile(offsets, 99)), 2)


def parent_summary(init_from: str) -> dict:
    """What a fine-tuned model started from: the file's hash, and its card's run, command and wall time."""
    from core.model import file_sha256, read_card

    card = read_card(init_from)
    return {"path": init_from, "sha256": file_sha256(init_from), "run": card.get("run"),
            "command": card.get("command"), "wall_s": card.get("wall_s"),
            "end_to_end_nme": card.get("metrics", {}).get("end_to_end", {}).get("nme")}


class RunBusyError(RuntimeError):
    """Another process is training (writing) this run folder."""


class Run:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = None

    def lock_writer(self) -> None:
        """Become the run folder's only writer, or raise RunBusyError. The lock (flock) belongs to this
        process: the OS drops it when the process exits or is killed, so a crash never leaves it stuck."""
        import fcntl

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
    model_path = property(lambda self: self.path / "model.keras")
    cancel_path = property(lambda self: self.path / "CANCEL")
    pseudo_path = property(lambda self: self.path / "pseudo_labels.npz")

    def state(self) -> dict:
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {"stage": 0, "epoch": 0}

    def cancel_requested(self) -> bool:
        return self.cancel_path.exists()

    def write_config(self, config) -> None:
        path = self.path / "config.json"
        if not path.exists():
            write_json_atomic(path, config.to_dict())

    def write_job(self) -> None:
        """job.json names the training process, so the page sees CLI runs as running too (one at a time)."""
        write_json_atomic(self.path / "job.json", {"pid": os.getpid(), "started": time.time()})

    def save_checkpoint(self, model, stage: int, epoch: int, stages: int) -> None:
        """Checkpoint first, then the state that points at it: a crash between the two only repeats an epoch."""
        tmp = self.path / "checkpoint.tmp.keras"
        model.save(tmp)
        os.replace(tmp, self.checkpoint_path)
        write_json_atomic(self.state_path, {"stage": stage, "epoch": epoch, "stages": stages})

    def save_pseudo_labels(self, data) -> None:
        tmp = self.path / "pseudo_labels.tmp.npz"
        np.savez_compressed(tmp, images=data.images, keypoints=data.keypoints)
        os.replace(tmp, self.pseudo_path)

    def save_test_faces(self, images, truth, predicted) -> None:
        """A few held-out faces with true and predicted keypoints, for the run's card on the training page."""
        tmp = self.path / "test_faces.tmp.npz"
        np.savez_compressed(tmp, images=images, truth=truth, predicted=predicted)
        os.replace(tmp, self.path / "test_faces.npz")

    def load_pseudo_labels(self):
        from trainer.data import KeypointData

        if not self.pseudo_path.is_file():
            return None
        with np.load(self.pseudo_path) as z:
            return KeypointData(z["images"], z["keypoints"])

    def finish(self, config, data, split, metrics: dict, wall_s: float, distribution: dict | None = None) -> dict:
        """Write the model card beside model.keras and mark the run finished."""
        groups = lambda d: sorted(set(d.groups)) if d.groups is not None else None  # noqa: E731
        card = {
            "model": self.model_path.name,
            "run": self.path.name,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": " ".join(["python", "-m", "trainer", *sys.argv[1:]]) if sys.argv and "trainer" in sys.argv[0] else None,
            "wall_s": round(wall_s, 1),
            "machine": f"{platform.machine()} {os.cpu_count()} cpus",
            "distribution": distribution,  # strategy, replicas in sync, worker addresses (trainer.distributed)
            "architecture": {"widths": list(config.widths), "dropout": config.dropout, "input": [96, 96, 1]},
            "data": {
                "source": config.data,
                "rows": len(data),
                "complete_rows": int(data.complete.sum()),
                "people": len(set(data.groups)) if data.groups is not None else None,
                "split": "by person" if data.groups is not None else "by row",
                "train_rows": len(split.train), "train_jitter_copies": int(split.train.is_copy.sum()), "val_rows": len(split.val), "test_rows": len(split.test),
                "pseudo_labelled_rows": len(split.incomplete) if config.pseudo_label else 0,
                "seed": config.seed,
                "test_people": groups(split.test),
                "val_people": groups(split.val),
            },
            "config": config.to_dict(),
            "parent": parent_summary(config.init_from) if config.init_from else None,
            "metrics": metrics,
            # Where the detector's crop puts a face on average (jitter copies would blur it): re-centring and live tracking use it.
            "mean_shape_crop": np.nanmean(split.train.keypoints[~split.train.is_copy], axis=0).round(3).tolist(),
            # How far detector crops put a face off that mean position: re-centring only moves faces beyond this.
            "train_offset_p99_px": face_offset_p99(split.train),
            "keypoint_names": list(KEYPOINT_NAMES),
        }
        write_json_atomic(card_path_for(self.model_path), card)
        write_json_atomic(self.state_path, {**self.state(), "finished": True})
        return card
