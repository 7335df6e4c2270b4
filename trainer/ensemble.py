"""Average finished runs into one model (`python -m trainer ensemble A B --run NAME`).

The ensemble is an ordinary finished run: one `.keras` file (trainer.architecture.average_models) with its
ONNX twin and card, so evaluation, shipping, the pages and archives treat it like any model. Its
members must share the split (the same test and validation people), or the ensemble would be
tested on people one of its members trained on.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from core.card import Inference, Metrics, ModelCard
from core.model import file_sha256
from core.paths import runs_dir
from core.registry import safe_run_dir
from trainer.architecture import average_models
from trainer.archive import write_finished_run_files
from trainer.cards import command_line
from trainer.export import load_keras_model, save_model, validate_keras_model
from trainer.runs import MODEL_FILE
from trainer.ship import model_of


def ensemble(members: list[str], run_name: str, root: str | os.PathLike | None = None) -> ModelCard:
    """Write run `run_name` whose model averages the members' (run names or .keras files with cards)."""
    if len(members) < 2:
        raise ValueError("An ensemble needs at least two models.")
    root = Path(root or runs_dir())
    target = safe_run_dir(run_name, root)
    if target.exists():
        raise ValueError(f"A run named '{run_name}' already exists; choose another name.")
    paths = [model_of(m) for m in members]
    cards = [ModelCard.read(p) for p in paths]
    splits = {(tuple(sorted(c.data.test_people or [])), tuple(sorted(c.data.val_people or []))) for c in cards}
    if len(splits) > 1 or not cards[0].data.test_people:
        raise ValueError("The members were not split alike (their cards name other test or validation people): "
                         "an ensemble of them would be tested on people it trained on.")
    members_summary = [{"run": c.run, "command": c.command, "sha256": file_sha256(p), "config": c.config}
                       for c, p in zip(cards, paths)]
    card = cards[0]  # the split, data and mean shape they share
    card.run, card.model, card.command = run_name, MODEL_FILE, command_line()
    card.wall_s = round(sum(c.wall_s or 0 for c in cards), 1)
    card.metrics, card.inference, card.evaluations, card.reproduce, card.locator = Metrics(), Inference(), [], [], None
    card.shipped_from_run = None
    card.extra = {**card.extra, "ensemble_of": members_summary}
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".ensemble-", dir=root))
    try:
        save_model(average_models([load_keras_model(p) for p in paths]), staging / MODEL_FILE)
        validate_keras_model(staging / MODEL_FILE)
        card.write(staging / MODEL_FILE)
        os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    write_finished_run_files(target, card, ensemble=True)
    return card
