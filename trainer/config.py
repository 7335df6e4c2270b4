"""RecipeConfig: every number of a training run, its validation, and the presets turned into configs.

Kept apart from trainer.recipe so that reading a run's config.json (the Training page, the run list,
archives, ship) never imports the training module and what it pulls in.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainer.architecture import DEFAULT_WIDTHS, DROPOUT_RATE, HEADS
from trainer.augment import AugmentConfig
from trainer.losses import LOSSES
from trainer.presets import ACTIVE_MODEL, DEFAULT_PRESET, PRESETS

#: Upper bounds of a config (RecipeConfig.__post_init__): six 2x poolings leave a 1x1 map of a 96 px crop;
#: wider or bigger than this does not fit a CPU's memory or time, and is almost surely a typo.
MAX_BLOCKS, MAX_WIDTH, MAX_BATCH, MAX_EPOCHS = 6, 1024, 4096, 10_000


def _number(value: Any) -> bool:
    numeric = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    return numeric and math.isfinite(value)


def _whole(value: Any, low: int, high: int) -> bool:
    return _number(value) and float(value).is_integer() and low <= value <= high


@dataclass(frozen=True)
class Stage:
    """One stage of a run: `epochs` epochs at one learning rate and batch size. `phase`: "main" (complete rows),
    "pseudo" (complete + pseudo-labelled rows) or "final" (complete rows again)."""

    index: int
    phase: str
    lr: float
    batch: int
    epochs: int

    @property
    def name(self) -> str:
        return f"{self.phase} lr={self.lr:g} batch={self.batch}"

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "name": self.name}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Stage:
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls)})


@dataclass
class RecipeConfig:
    """Every number of the recipe; defaults are the original recipe's. Saved as config.json in a run."""

    data: str = ""
    widths: tuple[int, ...] = DEFAULT_WIDTHS
    dropout: float = DROPOUT_RATE
    learning_rates: tuple[float, ...] = (1e-3, 1e-4, 1e-5)
    batch_sizes: tuple[int, ...] = (32, 64, 128)
    epochs_per_stage: int = 15
    pseudo_label: bool = True
    pseudo_stages: tuple[tuple[float, int], ...] = ((1e-4, 64), (1e-5, 128))
    final_stages: tuple[tuple[float, int], ...] = ((1e-5, 128),)
    test_size: float = 500  # rows (>= 1) or fraction (< 1) of complete rows held out
    val_fraction: float = 0.1  # of the remaining complete rows, for the per-epoch validation loss
    seed: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # 0 = each row once per epoch (the recipe); >0 = turned heads more often (trainer.sampling)
    pose_balance: float = 0.0
    # "none", "mirrored" (tf.distribute.MirroredStrategy over visible devices) or "multi_worker" (several machines,
    # TF_CONFIG: trainer.distributed)
    strategy: str = "none"
    frames: str = ""  # optional 68-point source (zip/folder) for end-to-end NME of the held-out people
    init_from: str = ""  # optional .keras model whose weights training starts from (fine-tuning); "" = random init
    loss: str = "mse"  # "mse" (the recipe), "l1" or "wing" (trainer.losses)
    head: str = "gap"  # trainer.architecture.HEADS: "gap" (the recipe), "flatten" or "softargmax"
    # bfloat16 compute (trainer.architecture.build_model; the saved model is float32): True, False, or "auto":
    # where the CPU computes bf16 natively (trainer.precision)
    mixed_precision: bool | str = False
    # the precision a run chose and why (trainer.precision.PrecisionChoice), filled in when a run starts
    precision: dict = field(default_factory=dict)
    # incomplete rows train in every stage with a loss masked to their labelled points (trainer.losses)
    masked_loss: bool = False
    # loss weight of the auxiliary 68-point head (trainer.architecture.build_model); 0 = no such head
    aux68: float = 0.0
    # with aux68: the 15 points are read from the 68-point head (no head of their own; the saved model keeps it)
    aux68_read15: bool = False

    def __post_init__(self) -> None:
        """Refuse (ValueError) a config that cannot be trained, before any file is written."""
        problems = []
        widths = list(self.widths)
        if not 1 <= len(widths) <= MAX_BLOCKS or not all(_whole(w, 1, MAX_WIDTH) for w in widths):
            problems.append(f"model widths must be 1 to {MAX_BLOCKS} whole numbers from 1 to {MAX_WIDTH} "
                            f"(got {', '.join(map(str, widths)) or 'none'})")
        stages = [*zip(self.learning_rates, self.batch_sizes, strict=False), *self.pseudo_stages, *self.final_stages]
        if not self.learning_rates or not self.batch_sizes:
            problems.append("at least one learning rate and one batch size are needed")
        if not all(_number(lr) and lr > 0 for lr in [*self.learning_rates, *(s[0] for s in stages)]):
            problems.append("learning rates must be numbers above 0")
        if not all(_whole(b, 1, MAX_BATCH) for b in [*self.batch_sizes, *(s[1] for s in stages)]):
            problems.append(f"batch sizes must be whole numbers from 1 to {MAX_BATCH}")
        if not _whole(self.epochs_per_stage, 1, MAX_EPOCHS):
            problems.append(f"epochs per stage must be a whole number from 1 to {MAX_EPOCHS}")
        if not (_number(self.test_size) and self.test_size >= 0):
            problems.append("the held-out test size must be 0 or more rows, or a fraction below 1 "
                            f"(got {self.test_size})")
        for name, value, high in (("dropout", self.dropout, 1), ("validation fraction", self.val_fraction, 1)):
            if not (_number(value) and 0 <= value < high):
                problems.append(f"{name} must be from 0 to below 1 (got {value})")
        if not (_number(self.pose_balance) and 0 <= self.pose_balance <= 1):
            problems.append(f"pose balance must be from 0 to 1 (got {self.pose_balance})")
        if self.loss not in LOSSES:
            problems.append(f"loss must be one of {', '.join(LOSSES)} (got {self.loss!r})")
        if self.head not in HEADS:
            problems.append(f"head must be one of {', '.join(HEADS)} (got {self.head!r})")
        if not isinstance(self.mixed_precision, bool) and self.mixed_precision != "auto":
            problems.append(f"mixed precision must be true, false or 'auto' (got {self.mixed_precision!r})")
        if not isinstance(self.masked_loss, bool):
            problems.append(f"masked loss must be true or false (got {self.masked_loss!r})")
        if not (_number(self.aux68) and self.aux68 >= 0):
            problems.append(f"the 68-point head's loss weight must be a number from 0 (got {self.aux68!r})")
        if not isinstance(self.aux68_read15, bool) or (self.aux68_read15 and not self.aux68):
            problems.append("reading the 15 points from the 68 needs a 68-point head weight above 0 (--aux68)")
        if not isinstance(self.precision, dict):
            problems.append(f"precision must be a record of the run's choice (got {self.precision!r})")
        if self.strategy not in ("none", "mirrored", "multi_worker"):
            problems.append(f"strategy must be 'none', 'mirrored' or 'multi_worker' (got {self.strategy!r})")
        if problems:
            raise ValueError("This training configuration cannot be trained: " + "; ".join(problems) + ".")

    def stages(self, has_incomplete: bool = True) -> list[Stage]:
        """The run's stages in order: main, then pseudo-label and final ones when the data has incomplete rows."""
        plan = [("main", lr, b) for lr in self.learning_rates for b in self.batch_sizes]
        if self.pseudo_label and has_incomplete:
            plan += [("pseudo", lr, b) for lr, b in self.pseudo_stages]
            plan += [("final", lr, b) for lr, b in self.final_stages]
        return [Stage(i, phase, float(lr), int(b), int(self.epochs_per_stage)) for i, (phase, lr, b) in enumerate(plan)]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RecipeConfig:
        """From config.json (or the page's choices); ValueError when it is not a trainable recipe config."""
        try:
            return cls._from_dict(d)
        except (TypeError, AttributeError, KeyError) as exc:
            raise ValueError(f"Not a recipe configuration ({type(exc).__name__}: {exc}).") from exc

    @classmethod
    def _from_dict(cls, d: dict) -> RecipeConfig:
        d = dict(d)
        augment = d.get("augment", {})
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in augment.items()}
        d["augment"] = AugmentConfig(**fields)
        for key in ("widths", "learning_rates", "batch_sizes"):
            if key in d:
                d[key] = tuple(d[key])
        for key in ("pseudo_stages", "final_stages"):
            if key in d:
                d[key] = tuple(tuple(s) for s in d[key])
        return cls(**{k: v for k, v in d.items() if k in {f.name for f in dataclasses.fields(cls)}})


def starting_point(model: str | os.PathLike | None = None) -> dict[str, Any]:
    """The config fields that start a run from `model` (default: the model the app uses): the file, and the
    widths, dropout and head its card records (the recipe's where the card is missing or older)."""
    from core.card import read_card
    from core.registry import active_model_path

    path = Path(model or active_model_path())
    card = read_card(path)
    fields: dict[str, Any] = {"init_from": str(path), "head": card.head}
    if card.architecture.widths:
        fields["widths"] = tuple(card.architecture.widths)
    if card.architecture.dropout is not None:
        fields["dropout"] = card.architecture.dropout
    if card.config.get("aux68_read15"):  # its saved model reads the 15 points from a 68-point head
        fields.update(aux68=card.config["aux68"], aux68_read15=True)
    return fields


def config_for(preset: str = DEFAULT_PRESET, augment: dict | None = None, **fields) -> RecipeConfig:
    """A preset with fields overridden (None = keep the preset's value); `augment` overrides AugmentConfig fields.

    The one place the CLI and the training page turn a person's choices into a RecipeConfig. A preset that
    starts from the active model takes that model's architecture, so its weights fit.
    """
    merged = {**RecipeConfig().to_dict(), **PRESETS[preset]}
    if merged["init_from"] == ACTIVE_MODEL:
        merged.update(starting_point())
    merged.update({k: v for k, v in fields.items() if v is not None})
    if PRESETS[preset].get("init_from") == ACTIVE_MODEL and not merged["init_from"]:
        raise ValueError(f"The {preset} preset trains a model further for a few epochs at low learning rates: it "
                         "needs a model to start from. Choose the studio preset to train from random weights.")
    merged["augment"] = {**merged["augment"], **(augment or {})}
    return RecipeConfig.from_dict(merged)
