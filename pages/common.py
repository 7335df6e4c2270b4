"""Helpers shared by the pages: the cached pipeline and the active-model panel.

Pages call these instead of core directly when Streamlit caching or widgets are involved;
everything that is not about the UI stays in core/ and trainer/.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.model import ModelError, read_card
from core.paths import SHIPPED_MODEL, active_model_path

NO_MODEL_HELP = (
    "No trained model was found at `{path}`. The app needs one to find keypoints.\n\n"
    "- Restore the shipped model: `git checkout -- models/` in the repository, or\n"
    "- train one: `python -m trainer import-68 ../shared/data/youtube-faces-68/training.zip` then "
    "`python -m trainer train --run my-model` and `python -m trainer activate my-model`."
)


@st.cache_resource(show_spinner="Loading the face detector and keypoint model…")
def _pipeline_for(model_path: str, mtime: float):
    from core.pipeline import FacePipeline

    return FacePipeline(model_path)


def load_pipeline():
    """The FacePipeline of the active model, loaded once per process and per model file version.

    Returns None (after showing how to fix it) when there is no usable model.
    """
    path = active_model_path()
    try:
        return _pipeline_for(str(path), path.stat().st_mtime)
    except (ModelError, OSError) as exc:
        st.error(NO_MODEL_HELP.format(path=path) + f"\n\nDetails: {exc}")
        return None


def model_summary(path: Path) -> dict:
    """A few lines of the model card for display."""
    card = read_card(path)
    metrics = card.get("metrics", {})
    e2e = metrics.get("end_to_end", {})
    return {
        "file": str(path.relative_to(SHIPPED_MODEL.parent.parent)) if path.is_relative_to(SHIPPED_MODEL.parent.parent) else str(path),
        "trained on": card.get("data", {}).get("source", "unknown"),
        "widths": card.get("architecture", {}).get("widths"),
        "held-out NME": e2e.get("nme"),
        "detection rate": e2e.get("detection_rate"),
        "test RMSE (96px crop)": metrics.get("test_rmse_px"),
    }


def sample_photos() -> dict[str, Path]:
    """Sample photos by name: FKS_SAMPLES_DIR, else ../shared/data/photos when it is beside the repo."""
    import os

    from core.paths import REPO_ROOT

    folder = Path(os.environ.get("FKS_SAMPLES_DIR", REPO_ROOT.parent / "shared" / "data" / "photos"))
    if not folder.is_dir():
        return {}
    return {p.name: p for p in sorted(folder.glob("*.jpg")) + sorted(folder.glob("*.jpeg"))}
