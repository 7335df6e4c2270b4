"""Where the shipped model, the runs and the data live (the active-model pointer: core.registry)."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_MODEL = REPO_ROOT / "models" / "keypoints.keras"
#: The face verifier (core.verifier), shipped beside the keypoint model; trainer.verifier trains it.
SHIPPED_VERIFIER = REPO_ROOT / "models" / "face-verifier.keras"


def runs_dir() -> Path:
    """Training runs (and the active-model pointer); FKS_RUNS_DIR overrides (tests use a temp dir)."""
    return Path(os.environ.get("FKS_RUNS_DIR", REPO_ROOT / "runs"))


def data_dir() -> Path:
    """Training data: imported datasets and uploaded files. FKS_DATA_DIR overrides (default data/)."""
    return Path(os.environ.get("FKS_DATA_DIR", REPO_ROOT / "data"))


#: The 68-point frames beside the repository, importable with `python -m trainer import-68`.
SHARED_68_DATASET = REPO_ROOT.parent / "shared" / "data" / "youtube-faces-68" / "training.zip"
DEFAULT_DATASET_NAME = "youtube68.csv.gz"
