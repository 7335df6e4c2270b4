"""Data shaped like the Kaggle file the recipe was made for, from complete imported frames.

Kaggle's "Facial Keypoints Detection" file labels all 15 points on ~30% of its rows; the other ~70%
carry only KAGGLE_ALWAYS (both eye centres, the nose tip, the bottom lip's centre). The imported
68-point frames are complete, so the recipe's pseudo-labelling stage has nothing to fill on them.
`kaggle_shaped` blanks the other 11 points on a seeded fraction of the *training* people's rows;
validation and test people stay complete (they are what is measured), and the person split is
unchanged (trainer.recipe.make_split draws people over all their rows).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.files import write_json_atomic
from core.schema import KEYPOINT_NAMES
from trainer.data import KeypointData, read_kaggle_csv, write_kaggle_csv

#: The points every row of Kaggle's file carries.
KAGGLE_ALWAYS: tuple[str, ...] = ("left_eye_center", "right_eye_center", "nose_tip", "mouth_center_bottom_lip")
#: Kaggle's share of rows with only KAGGLE_ALWAYS (4909 of 7049).
KAGGLE_INCOMPLETE_FRACTION = 0.7


@dataclass
class PartialReport:
    """What `write_kaggle_shaped` did: row counts and the people on each side of the split."""

    rows: int
    blanked_rows: int
    train_rows: int
    kept_points: tuple[str, ...]
    fraction: float
    seed: int
    val_people: list[str]
    test_people: list[str]


def kaggle_shaped(data: KeypointData, train_rows: np.ndarray, fraction: float = KAGGLE_INCOMPLETE_FRACTION,
                  seed: int = 0) -> tuple[KeypointData, np.ndarray]:
    """A copy of `data` whose rows at `train_rows` keep only KAGGLE_ALWAYS with probability `fraction`
    (seeded); returns it and the indices of the blanked rows."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"the fraction of training rows to blank must be from 0 to 1 (got {fraction})")
    rng = np.random.default_rng(seed)
    train_rows = np.sort(np.asarray(train_rows, int))
    blanked = train_rows[rng.random(len(train_rows)) < fraction]
    keypoints = data.keypoints.copy()
    drop = np.array([i for i, name in enumerate(KEYPOINT_NAMES) if name not in KAGGLE_ALWAYS])
    keypoints[np.ix_(blanked, drop)] = np.nan
    return KeypointData(data.images, keypoints, data.groups, data.frames), blanked


def _people(data: KeypointData) -> set[str]:
    return set() if data.groups is None else {str(g) for g in data.groups}


def write_kaggle_shaped(source: str | os.PathLike, out: str | os.PathLike, test_size: float = 0.1,
                        val_fraction: float = 0.1, split_seed: int = 0, fraction: float = KAGGLE_INCOMPLETE_FRACTION,
                        seed: int = 0) -> PartialReport:
    """Read a complete imported file, blank the training people's rows (kaggle_shaped) and write it with
    `<out>.report.json`. The split is the recipe's for `test_size`, `val_fraction` and `split_seed`
    (train's --test-size and seed), and is checked to be the same on the written file."""
    from trainer.config import RecipeConfig
    from trainer.recipe import make_split  # keras stays unimported: recipe imports it lazily

    data = read_kaggle_csv(source)
    groups = data.groups
    if groups is None:
        raise ValueError(f"{source} has no person column; the split by person needs one (python -m trainer import-68)")
    if not data.complete.all():
        raise ValueError(f"{source} already has incomplete rows; start from a complete file "
                         "(python -m trainer import-68)")
    config = RecipeConfig(test_size=test_size, val_fraction=val_fraction, seed=split_seed)
    split = make_split(data, config)
    val_people, test_people = _people(split.val), _people(split.test)
    held_out = np.isin(groups, sorted(val_people | test_people))
    shaped, blanked = kaggle_shaped(data, np.flatnonzero(~held_out), fraction, seed)
    after = make_split(shaped, config)
    if _people(after.val) != val_people or _people(after.test) != test_people:
        raise RuntimeError("blanking labels changed the person split; nothing was written")
    out = Path(out)
    write_kaggle_csv(shaped, out)
    train_rows = len(data) - int(held_out.sum())
    report = PartialReport(rows=len(data), blanked_rows=len(blanked), train_rows=train_rows,
                           kept_points=KAGGLE_ALWAYS, fraction=fraction, seed=seed,
                           val_people=sorted(val_people), test_people=sorted(test_people))
    write_json_atomic(out.with_name(out.name + ".report.json"), {**report.__dict__, "source": str(source),
                                                                  "kept_points": list(KAGGLE_ALWAYS)})
    return report
