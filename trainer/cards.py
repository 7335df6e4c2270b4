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
from pathlib import Path

import numpy as np

from core.card import Architecture, DataSummary, Metrics, ModelCard, card_path_for, read_card
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


def _points_heads(aux68: float, read15: bool) -> str:
    """The keypoint heads a model has while it trains: a saved aux68 model keeps only its 15-point head."""
    return "68 (15 read from them)" if read15 else "15 and 68" if aux68 else "15"


def check_parent(config, split) -> None:
    """Refuse (ValueError) to start `config` from its `init_from` model where that cannot work or would spoil
    this run's measurement: the parent must have this run's architecture, and must not have trained on anyone
    this split holds out (its validation and test scores would then be on faces the model has seen).

    A parent without a card is refused (nobody knows what it saw); one whose card predates `train_people` must
    hold out exactly this split's validation and test people. Messages name files, never server paths: the
    Training page shows them.
    """
    if not config.init_from:
        return
    path = Path(config.init_from)
    if not path.is_file():
        raise ValueError(f"The model to start from ({path.name}) does not exist.")
    if not card_path_for(path).is_file():
        raise ValueError(f"{path.name} has no card ({card_path_for(path).name}) beside it: what it was trained on, "
                         "and so whether this run's held-out people are new to it, is unknown.")
    card = read_card(path)
    parent_heads = _points_heads(0, bool(card.config.get("aux68_read15")))
    child_heads = _points_heads(config.aux68, config.aux68_read15)
    widths = list(card.architecture.widths)
    if (widths and widths != list(config.widths)) or card.head != config.head or parent_heads != child_heads:
        raise ValueError(f"{path.name} has widths {','.join(map(str, widths))}, a {card.head} head and "
                         f"{parent_heads} keypoints; this run asks for {','.join(map(str, config.widths))}, "
                         f"{config.head} and {child_heads}. Start from a model of the same architecture.")
    if split.test.groups is None:
        return
    val, test = set(split.val.groups if split.val.groups is not None else []), set(split.test.groups)
    if card.data.train_people is not None:
        seen = sorted((val | test) & set(card.data.train_people))
        if seen:
            split_hint = (f" (test size {card.config['test_size']}, seed {card.config.get('seed', 0)})"
                          if "test_size" in card.config else "")
            raise ValueError(f"{path.name} was trained on {len(seen)} of the people this run holds out for "
                             f"validation and test (e.g. {seen[0]}): its scores would be on faces it has seen. "
                             f"Hold out the people its card holds out{split_hint}, or train from random weights "
                             "(the studio preset).")
        return
    for name, theirs, ours in (("tested", card.data.test_people, test), ("validated", card.data.val_people, val)):
        if theirs is not None and set(theirs) != ours:
            raise ValueError(f"{path.name} was {name} on other people than this split holds out, and its card does "
                             "not say whom it trained on: starting from it here could score this run on faces it "
                             "has seen. Use the same data, test size and seed as its card.")


def trained_people(data, split) -> list[str] | None:
    """Everyone not held out: their complete rows train, and their incomplete rows too where the run
    pseudo-labels them or masks the loss (a parent's card must name them all for check_parent)."""
    if data.groups is None:
        return None
    held_out = set(split.val.groups if split.val.groups is not None else []) | set(split.test.groups)
    return sorted(set(data.groups) - held_out)


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
            train_people=trained_people(data, split),
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
