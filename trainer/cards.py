"""What a finished run's model card says: composed from the recipe's config, data, split and metrics.

trainer.runs keeps the run folder; this module decides the card's content (core.card.ModelCard),
so the run bookkeeping never spells out card fields.
"""
from __future__ import annotations

import os
import platform
import shlex
import sys
import time

import numpy as np

from core.card import Architecture, DataSummary, Metrics, ModelCard, read_card
from core.model import file_sha256
from core.schema import CROP_SHAPE, KEYPOINT_NAMES


def command_line() -> str | None:
    """The `python -m trainer ...` command this process runs (quoted for a shell), or None outside the CLI."""
    if not sys.argv or "trainer" not in sys.argv[0]:
        return None
    return shlex.join(["python", "-m", "trainer", *sys.argv[1:]])


def face_offset_p99(train) -> float:
    """99th percentile (crop px) of the distance from each training face's centroid to the mean face's centroid."""
    keypoints = train.keypoints[~train.is_copy]
    centroids = np.nanmean(keypoints, axis=1)
    offsets = np.hypot(*(centroids - np.nanmean(centroids, axis=0)).T)
    return round(float(np.nanpercentile(offsets, 99)), 2)


def parent_summary(init_from: str) -> dict:
    """What a fine-tuned model started from: the file's hash, and its card's run, command and wall time."""
    card = read_card(init_from)
    return {"path": init_from, "sha256": file_sha256(init_from), "run": card.run,
            "command": card.command, "wall_s": card.wall_s, "end_to_end_nme": card.end_to_end.nme}


def run_card(run_name: str, model_name: str, config, data, split, metrics: dict, wall_s: float,
             distribution: dict | None = None) -> ModelCard:
    """The card of a model trained by the recipe (trainer.recipe.train) on `data`, split as `split`."""
    groups = lambda d: sorted(set(d.groups)) if d.groups is not None else None  # noqa: E731
    train_faces = split.train.keypoints[~split.train.is_copy]  # jitter copies would blur the mean position
    return ModelCard(
        model=model_name,
        run=run_name,
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        command=command_line(),
        wall_s=round(wall_s, 1),
        machine=f"{platform.machine()} {os.cpu_count()} cpus",
        distribution=distribution,
        architecture=Architecture(widths=list(config.widths), dropout=config.dropout, input=list(CROP_SHAPE),
                                  head=config.head),
        data=DataSummary(
            source=config.data,
            rows=len(data),
            complete_rows=int(data.complete.sum()),
            people=len(set(data.groups)) if data.groups is not None else None,
            split="by person" if data.groups is not None else "by row",
            train_rows=len(split.train),
            train_jitter_copies=int(split.train.is_copy.sum()),
            val_rows=len(split.val),
            test_rows=len(split.test),
            pseudo_labelled_rows=len(split.incomplete) if config.pseudo_label else 0,
            seed=config.seed,
            test_people=groups(split.test),
            val_people=groups(split.val),
        ),
        config=config.to_dict(),
        parent=parent_summary(config.init_from) if config.init_from else None,
        metrics=Metrics.from_dict(metrics),
        # Where the detector's crop puts a face on average: re-centring and live tracking use it.
        mean_shape_crop=np.nanmean(train_faces, axis=0).round(3).tolist(),
        # How far detector crops put a face off that mean position: re-centring only moves faces beyond this.
        train_offset_p99_px=face_offset_p99(split.train),
        keypoint_names=list(KEYPOINT_NAMES),
    )
