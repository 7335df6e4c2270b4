"""Where the shipped model, the runs and the data live (the active-model pointer: core.registry)."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_MODEL = REPO_ROOT / "models" / "keypoints.keras"
#: The face verifier (core.verifier), shipped beside the keypoint model; trainer.verifier trains it.
SHIPPED_VERIFIER = REPO_ROOT / "models" / "face-verifier.keras"


def runs_dir() -> Path:
    """Training runs (and the active-model pointer); FKS_RUNS_DIR overrides (tests use a temp dir). Absolute: a
    relative FKS_RUNS_DIR is taken from the current directory once, so a trainer started elsewhere (trainer.jobs
    runs it in the repository) reads the same folder as the page."""
    return Path(os.environ.get("FKS_RUNS_DIR", REPO_ROOT / "runs")).absolute()


def data_dir() -> Path:
    """Training data: imported datasets and uploaded files. FKS_DATA_DIR overrides (default data/); absolute."""
    return Path(os.environ.get("FKS_DATA_DIR", REPO_ROOT / "data")).absolute()


#: The shared data folder beside the repository (photos, video, the 68-point frames); tests skip without it.
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
#: The 68-point frames beside the repository, importable with `python -m trainer import-68`.
SHARED_68_DATASET = SHARED_DATA / "youtube-faces-68" / "training.zip"
#: The same path as commands run from the repository root spell it (in messages and model cards).
SHARED_68_DATASET_ARG = "../shared/data/youtube-faces-68/training.zip"
DEFAULT_DATASET_NAME = "youtube68.csv.gz"
