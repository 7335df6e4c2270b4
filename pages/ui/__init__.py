"""Helpers shared by app.py and the pages: page setup, the cached pipeline, data-source widgets.

Streamlit runs app.py (the home page) and each pages/*.py file on its own, so every one of them
starts with `page_setup()`. This package sits in a subfolder of pages/ so Streamlit does not list
it as a page. Everything that is not about the UI stays in core/ and trainer/.
"""
from __future__ import annotations

# streamlit_webrtc must be imported before anything that may import TensorFlow: both ship
# OpenSSL symbols and the other order crashes the interpreter (see DEVELOPERS.md).
import streamlit_webrtc  # noqa: F401  isort: skip

from pathlib import Path

import streamlit as st

#: (script, label) of every page, in sidebar order.
PAGES = [
    ("app.py", "Home"),
    ("pages/photo.py", "Photo"),
    ("pages/webcam.py", "Webcam"),
    ("pages/dataset.py", "Dataset"),
    ("pages/training.py", "Training"),
]


def page_setup(title: str) -> None:
    """Page config and the sidebar navigation; the first Streamlit call of every page."""
    st.set_page_config(page_title=f"{title} · Facial Keypoints Studio", page_icon="🙂", layout="wide")
    with st.sidebar:
        for script, label in PAGES:
            st.page_link(script, label=label)
        st.divider()

from core.card import read_card
from core.model import ModelError, model_file_problem
from core.paths import SHIPPED_MODEL
from core.registry import active_model_path

NO_MODEL_HELP = (
    "No trained model was found at `{path}`. The app needs one to find keypoints.\n\n"
    "- Restore the shipped model: `git checkout -- models/` in the repository, or\n"
    "- train one: `python -m trainer import-68 ../shared/data/youtube-faces-68/training.zip` then "
    "`python -m trainer train --run my-model` and `python -m trainer activate my-model`."
)
UNREADABLE_MODEL_HELP = (
    "The active model file `{path}` is **unreadable**: it is not a valid .keras model (damaged or truncated).\n\n"
    "- Go back to the shipped model: Training page, \"Use the shipped model\", or `python -m trainer activate shipped`;\n"
    "- or make another finished run active."
)


def model_problem_message(path: Path) -> str | None:
    """What to tell a person when the model file at `path` is missing or unreadable (its name only, no server path)."""
    problem = model_file_problem(path)
    if problem == "missing":
        return NO_MODEL_HELP.format(path=path.name)
    if problem:
        return UNREADABLE_MODEL_HELP.format(path=path.name)
    return None


@st.cache_resource(show_spinner="Loading the face detector and keypoint model…")
def _pipeline_for(model_path: str, mtime: float):
    from core.pipeline import FacePipeline

    return FacePipeline(model_path)


def load_pipeline():
    """The FacePipeline of the active model, loaded once per process and per model file version.

    Returns None (after showing how to fix it) when there is no usable model.
    """
    path = active_model_path()
    problem = model_problem_message(path)
    if problem:
        st.error(problem)
        return None
    try:
        return _pipeline_for(str(path), path.stat().st_mtime)
    except (ModelError, OSError) as exc:
        st.error(f"The active model `{path.name}` cannot be used: {exc}")
        return None


def model_summary(path: Path) -> dict:
    """A few lines of the model card for display."""
    card = read_card(path)
    metrics = card.metrics
    e2e = card.end_to_end
    return {
        "file": str(path.relative_to(SHIPPED_MODEL.parent.parent)) if path.is_relative_to(SHIPPED_MODEL.parent.parent) else str(path),
        "trained on": card.data.source or "unknown",
        "widths": card.architecture.widths,
        "held-out NME": e2e.get("nme"),
        "detection rate": e2e.get("detection_rate"),
        "test RMSE (96px crop)": metrics.get("test_rmse_px"),
        "inference": inference_summary(card.to_dict().get("inference", {})),
    }


def inference_summary(inference: dict) -> str:
    """The card's inference options in words."""
    parts = ["flip-averaged" if inference.get("flip_average") else "single pass"]
    recentre = inference.get("recentre")
    if recentre:
        by = recentre.get("locator") or "the model itself"
        parts.append(f"crops re-centred by {by} when a face sits over {recentre.get('min_offset_px')} px off-centre")
    return ", ".join(parts)


def sample_photos() -> dict[str, Path]:
    """Sample photos by name: FKS_SAMPLES_DIR, else ../shared/data/photos when it is beside the repo."""
    import os

    from core.paths import REPO_ROOT

    folder = Path(os.environ.get("FKS_SAMPLES_DIR", REPO_ROOT.parent / "shared" / "data" / "photos"))
    if not folder.is_dir():
        return {}
    return {p.name: p for p in sorted(folder.glob("*.jpg")) + sorted(folder.glob("*.jpeg"))}


def choose_dataset(key: str) -> Path | None:
    """Widgets to pick a Kaggle-format file: upload, a path on the server, or the default data.

    Uploads are saved under the data folder by content hash (core.userfiles), so the trainer (a separate
    process) reads exactly the uploaded bytes; server paths are confined to the data folders.
    Returns the file's path, or None until one is chosen.
    """
    from core.paths import DEFAULT_DATASET_NAME, SHARED_68_DATASET, data_dir
    from core.userfiles import PathNotAllowed, resolve_server_path, save_upload

    source = st.radio("Data source", ["Default data", "Upload", "Path on the server"], horizontal=True, key=f"{key}-src")
    if source == "Upload":
        upload = st.file_uploader("Kaggle-format training file (.csv, .csv.gz or .zip)", type=["csv", "gz", "zip"],
                                  key=f"{key}-upload")
        if upload is None:
            return None
        file_id, stored = st.session_state.get(f"{key}-stored", (None, None))
        if file_id != upload.file_id or not Path(stored).is_file():  # hash a file once, not on every rerun
            stored = str(save_upload(upload.getvalue(), upload.name))
            st.session_state[f"{key}-stored"] = (upload.file_id, stored)
        return Path(stored)
    if source == "Path on the server":
        text = st.text_input("Path to a .csv, .csv.gz or .zip file on the server", key=f"{key}-path")
        if not text:
            return None
        try:
            return resolve_server_path(text)
        except PathNotAllowed as exc:
            st.error(str(exc))
            return None
    default = data_dir() / DEFAULT_DATASET_NAME
    if default.is_file():
        st.caption(f"Default data: `{default.name}`")
        return default
    if SHARED_68_DATASET.is_file():
        st.info("No imported data yet. The YouTube-faces frames are available in `../shared/data`: "
                "import them (face detection + cropping, about a minute).")
        if st.button("Import YouTube-faces now", key=f"{key}-import"):
            from trainer.importer import import_68_dataset

            bar = st.progress(0.0, text="Importing frames…")
            report = import_68_dataset(SHARED_68_DATASET, default,
                                       progress=lambda done, total: bar.progress(done / total, text=f"Importing frame {done}/{total}"))
            st.success(f"Imported {report.imported} faces from {report.frames} frames "
                       f"({len(report.no_face)} frames without a detected face are listed in the report).")
            return default
        return None
    st.info("No default data yet. Upload a Kaggle-format file or give a path.")
    return None


@st.cache_resource(max_entries=2, show_spinner=False)
def _read_dataset(path: str, mtime: float, _progress=None):
    from trainer.data import read_kaggle_csv

    return read_kaggle_csv(path, progress=_progress)


def load_dataset(path: Path):
    """Parse once per file version (cached for the process), with a progress bar; errors shown in the page."""
    from trainer.data import DatasetError

    bar = st.progress(0.0, text=f"Reading {path.name}…")
    try:
        data = _read_dataset(str(path), path.stat().st_mtime,
                             lambda f: bar.progress(min(f, 1.0), text=f"Parsing pixels… {f:.0%}"))
    except DatasetError as exc:
        bar.empty()
        st.error(f"{path.name} is not usable training data: {exc}")
        return None
    bar.empty()
    return data
