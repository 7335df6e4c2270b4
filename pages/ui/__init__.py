"""Helpers shared by app.py and the pages: page setup, the cached pipeline, data-source widgets.

Streamlit runs app.py (the home page) and each pages/*.py file on its own, so every one of them
starts with `page_setup()`. This package sits in a subfolder of pages/ so Streamlit does not list
it as a page. Everything that is not about the UI stays in core/ and trainer/.

Pages are routed by file, not by `st.navigation`: with the views here, out of the page list, explicit
routing would only move the home page out of app.py and leave the pages' URLs as they are.
"""
from __future__ import annotations

# streamlit_webrtc must be imported before anything that may import TensorFlow: both ship
# OpenSSL symbols, and importing TensorFlow first crashes the interpreter at import (a segfault).
import streamlit_webrtc  # noqa: F401  isort: skip

from pathlib import Path

import streamlit as st

from core.card import read_card
from core.model import ModelError, model_file_problem
from core.paths import SHIPPED_MODEL
from core.registry import active_model_path
from pages.ui import form

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
    st.session_state["previous_page"] = st.session_state.get("this_page")  # the page of the last full run
    st.session_state["this_page"] = title
    with st.sidebar:
        for script, label in PAGES:
            st.page_link(script, label=label)
        st.divider()


#: About what bench/bench_import.py measures for the 3462 YouTube-faces frames on 2 cores; the progress bar then
#: counts down from the real pace.
IMPORT_ESTIMATE_S = 50

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


def model_version(pipeline) -> str:
    """A cache key for results of the loaded model: its file and modification time, the same version
    `_pipeline_for` loads by (a model re-shipped in place gets new results, not stale ones)."""
    path = pipeline.predictor.keras_path
    return f"{path}:{path.stat().st_mtime}"


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
    """A few lines of the model card for display ("—" where the card has no value)."""
    card = read_card(path)
    metrics = card.metrics
    e2e = card.end_to_end
    summary = {
        "file": model_place(path),
        "trained on": card.data.describe(),
        "widths": ", ".join(map(str, card.architecture.widths or [])) or None,
        "head": form.HEAD_LABELS.get(card.head) if card.config or card.architecture.head else None,
        "held-out NME": e2e.nme,
        "held-out frames above 0.10 NME": f"{e2e.frames_above_010:.1%}" if e2e.frames_above_010 is not None else None,
        "detection rate": e2e.detection_rate,
        "test RMSE (96px crop)": metrics.test_rmse_px,
        "training time": f"{card.wall_s / 60:.0f} min on {card.machine or 'an unknown machine'}"
                         + _parent_time(card.parent) if card.wall_s else None,
        "inference": card.inference.describe(),
        "webcam": _webcam_model(card.inference),
    }
    return {k: "—" if v is None else v for k, v in summary.items()}


def model_place(path: Path) -> str:
    """Where a model file is, as a person names it: a run by its name, else its path in the repository."""
    from core.paths import runs_dir

    path = Path(path).resolve()
    runs = runs_dir().resolve()
    if path.parent.parent == runs:
        return f"run '{path.parent.name}' (runs/{path.parent.name}/{path.name})"
    root = SHIPPED_MODEL.parent.parent.resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else path.name


def display_command(command: str) -> str:
    """A card's command as a person can run it here: paths inside the repository or the runs folder
    made relative to the repository (runs/...), any other server path (e.g. a /tmp config) cut to its name."""
    import shlex

    from core.paths import runs_dir

    root, runs = SHIPPED_MODEL.parent.parent.resolve(), runs_dir().resolve()
    words = []
    for word in command.split(" "):
        if word.startswith("/"):
            where = Path(word)
            if where.is_relative_to(runs):
                word = str(Path("runs") / where.relative_to(runs))
            elif where.is_relative_to(root):
                word = str(where.relative_to(root))
            else:
                word = shlex.quote(where.name)
        words.append(word)
    return " ".join(words)


def _parent_time(parent: dict | None) -> str:
    """A fine-tuned model's training time leaves out its parent's: say so."""
    if not parent or not parent.get("wall_s"):
        return ""
    return f", after {parent['wall_s'] / 60:.0f} min for {parent.get('run') or 'the model it continues'}"


def _webcam_model(inference) -> str:
    """Which twin the webcam runs (core.pipeline.FacePipeline.live_predictor) and why."""
    if inference.int8_live:
        return f"int8 twin (validation NME {inference.int8.nme}, float {inference.int8.float_nme})"
    return "float model"


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

    # The stored upload's name rides in the page's URL, so a browser reload (a new session) keeps the file.
    param = f"{key}-upload"
    kept = _kept_upload(st.query_params.get(param))
    source = st.radio("Data source", ["Default data", "Upload", "Path on the server"], horizontal=True,
                      key=f"{key}-src", index=1 if kept else 0)
    if source == "Upload":
        upload = st.file_uploader("Kaggle-format training file (.csv, .csv.gz or .zip)", type=["csv", "gz", "zip"],
                                  key=f"{key}-upload")
        if upload is None:
            if kept is not None and f"{key}-stored" not in st.session_state:
                st.caption(f"Using `{kept.name[13:]}`, uploaded before the page was reloaded. "
                           "Upload another file to replace it.")
                return kept
            st.session_state.pop(f"{key}-stored", None)  # the person removed the file: forget it
            st.query_params.pop(param, None)
            return None
        file_id, stored = st.session_state.get(f"{key}-stored", (None, None))
        if file_id != upload.file_id or not Path(stored).is_file():  # hash a file once, not on every rerun
            stored = str(save_upload(upload.getvalue(), upload.name))
            st.session_state[f"{key}-stored"] = (upload.file_id, stored)
        st.query_params[param] = Path(stored).name
        return Path(stored)
    st.query_params.pop(param, None)  # another source: a reload shows that one
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
    if not default.is_file() and SHARED_68_DATASET.is_file():
        _offer_import(SHARED_68_DATASET, default, key)
    if default.is_file():
        st.caption(f"Default data: `{default.name}` in the data folder")
        _show_import_report(default)
        return default
    if SHARED_68_DATASET.is_file():
        return None
    st.info("No default data yet. Upload a Kaggle-format file or give a path.")
    return None


def _kept_upload(name: str | None) -> Path | None:
    """The upload a page URL names (core.userfiles.stored_name), if it is still in the uploads folder."""
    from core.userfiles import uploads_dir

    if not name or Path(name).name != name or name.startswith("."):
        return None
    path = uploads_dir() / name
    return path if path.is_file() else None


def _offer_import(frames: Path, out: Path, key: str) -> None:
    """The "no imported data yet" box and its button, in a placeholder that is cleared once the import is done."""
    import time

    from trainer.importer import default_workers, import_68_dataset

    box = st.empty()
    with box.container():
        st.info("No imported data yet. The YouTube-faces frames (3462 video frames of 347 people) are beside the "
                f"app: import them (face detection + cropping). On 2 idle cores this takes about {IMPORT_ESTIMATE_S} s "
                "(bench/bench_import.py); a busy machine takes longer, and the progress bar then counts down "
                "from the pace it measures.")
        if not st.button("Import YouTube-faces now", key=f"{key}-import"):
            return
        bar = st.progress(0.0, text="Importing frames…")
        started = time.monotonic()

        def progress(done: int, total: int) -> None:
            left = (time.monotonic() - started) / done * (total - done)
            bar.progress(done / total, text=f"Finding faces: frame {done}/{total}, about {left:.0f} s left")

        report = import_68_dataset(frames, out, progress=progress, workers=default_workers())
        bar.progress(1.0, text=f"Done in {time.monotonic() - started:.0f} s")
    box.empty()
    st.success(f"Imported {report.imported} faces from {report.frames} frames.")


def _show_import_report(path: Path) -> None:
    """What the importer's report says about the default data: frames, faces, and the frames without one."""
    from trainer.importer import read_import_report

    report = read_import_report(path)
    if not report:
        return
    no_face, unreadable = report.get("no_face", []), report.get("unreadable", [])
    with st.expander(f"Import report: {report.get('imported')} faces from {report.get('frames')} frames of "
                     f"{report.get('people')} people; {len(no_face)} frames without a detected face"):
        st.caption("Frames where the detector found no face matching the labels are left out of the data "
                   "(the model is trained on what the detector sees).")
        if no_face:
            st.dataframe({"frame without a detected face": no_face}, hide_index=True, height=200)
        if unreadable:
            st.dataframe({"unreadable frame": unreadable}, hide_index=True, height=150)


@st.cache_resource(max_entries=2, show_spinner=False)
def _read_dataset(path: str, mtime: float):
    """Parsed file, once per file version and process. Draws nothing: a cached function that drew into
    the page would fail on a cache hit (Streamlit replays its elements: CacheReplayClosureError)."""
    from trainer.data import read_kaggle_csv

    return read_kaggle_csv(path)


def load_dataset(path: Path):
    """Parse once per file version (cached for the process); errors shown in the page."""
    from trainer.data import DatasetError

    try:
        with st.spinner(f"Reading {path.name}…"):
            return _read_dataset(str(path), path.stat().st_mtime)
    except DatasetError as exc:
        st.error(f"{path.name} is not usable training data: {exc}")
        return None
