"""68-point import on real frames (when ../shared is present) and on a made-up frame with no face."""
import json

import numpy as np
import pytest

from core.schema import INDEX
from tests.helpers import small_68_zip
from trainer.data import read_kaggle_csv
from trainer.importer import JitterConfig, import_68_dataset


@pytest.fixture
def small_68_set(shared_data, tmp_path):
    """20 real frames of 2 people plus one blank frame, as a zip in the dataset's layout."""
    return small_68_zip(shared_data / "youtube-faces-68" / "training.zip", tmp_path / "small.zip", people=2, blank=True)


def test_import_real_frames(small_68_set, tmp_path):
    zip_path, n_real = small_68_set
    report = import_68_dataset(zip_path, tmp_path / "out.csv")
    assert report.frames == n_real + 1
    assert "Nobody_00.jpg" in report.no_face  # counted and listed, not silently dropped
    assert report.imported >= n_real - 1 and report.people == 2
    saved = json.loads((tmp_path / "out.csv.report.json").read_text())
    assert saved["imported"] == report.imported and "Nobody_00.jpg" in saved["no_face"]
    data = read_kaggle_csv(tmp_path / "out.csv")
    assert len(data) == report.imported and data.complete.all()
    assert len(set(data.groups)) == 2
    k = data.keypoints
    # faces are framed the way the model expects: eyes above nose above mouth, subject's left on image right
    assert (k[:, INDEX["left_eye_center"], 0] > k[:, INDEX["right_eye_center"], 0]).all()
    assert (k[:, INDEX["left_eye_center"], 1] < k[:, INDEX["nose_tip"], 1]).all()
    assert (k[:, INDEX["nose_tip"], 1] < k[:, INDEX["mouth_center_bottom_lip"], 1]).all()
    assert (k > 0).all() and (k < 96).all()


def test_jitter_copies_are_real_crops_of_the_same_labels(small_68_set, tmp_path):
    zip_path, _ = small_68_set
    report = import_68_dataset(zip_path, tmp_path / "out.csv", jitter=JitterConfig(copies=2, seed=1))
    data = read_kaggle_csv(tmp_path / "out.csv")
    assert 2 * report.imported <= len(data) <= 3 * report.imported  # the report counts frames, not rows
    originals, copies = data.subset(np.flatnonzero(~data.is_copy)), data.subset(np.flatnonzero(data.is_copy))
    assert len(copies) >= len(originals)  # a draw that would cut off a keypoint is skipped
    assert all(str(f).split("#")[0] in set(originals.frames) for f in copies.frames)
    # same face, other framing: the labels moved with the crop, and the pixels under them are new
    row_of = {f: i for i, f in enumerate(originals.frames)}
    source = [row_of[str(f).split("#")[0]] for f in copies.frames]
    moved = np.abs(copies.keypoints - originals.keypoints[source]).max(axis=(1, 2))
    assert np.median(moved) > 1.0
    # the face's shape is the same, only framed differently (a scale + shift of the original labels)
    a, b = originals.keypoints[source], copies.keypoints
    spread = lambda k: np.linalg.norm(k - k.mean(1, keepdims=True), axis=2).mean(1)  # noqa: E731
    ratio = spread(b) / spread(a)
    normalised = (b - b.mean(1, keepdims=True)) / ratio[:, None, None] - (a - a.mean(1, keepdims=True))
    assert np.abs(normalised).max() < 0.05
    assert (copies.keypoints >= 0).all() and (copies.keypoints <= 95).all()


def test_parallel_import_writes_the_same_file_as_one_process(small_68_set, tmp_path, monkeypatch):
    import trainer.importer as importer

    zip_path, _ = small_68_set
    monkeypatch.setattr(importer, "CHUNK_FRAMES", 4)  # several chunks over the worker processes
    seen = []
    one = import_68_dataset(zip_path, tmp_path / "one.csv", jitter=JitterConfig(copies=1, seed=3), workers=1)
    two = import_68_dataset(zip_path, tmp_path / "two.csv", jitter=JitterConfig(copies=1, seed=3), workers=2,
                            progress=lambda done, total: seen.append((done, total)))
    assert one.to_dict() == two.to_dict()
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "two.csv").read_bytes()
    assert seen[-1] == (two.frames, two.frames) and [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_dataset_page_imports_then_shows_the_report_instead_of_the_offer(small_68_set, tmp_path, monkeypatch):
    """The page's import button: the offer box goes away and what the report says is on the page."""
    from streamlit.testing.v1 import AppTest

    import core.paths
    from tests.conftest import REPO

    zip_path, n_real = small_68_set
    monkeypatch.setattr(core.paths, "SHARED_68_DATASET", zip_path)
    monkeypatch.setenv("FKS_DATA_DIR", str(tmp_path / "data"))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)  # the app, so the sidebar's page links resolve
    at.switch_page("pages/dataset.py").run()
    assert not at.exception and "No imported data yet" in at.info[0].value
    at.button(key="dataset-import").click().run()
    assert not at.exception
    assert not [i for i in at.info if "No imported data yet" in i.value] and not at.button
    assert any(f"from {n_real + 1} frames" in s.value for s in at.success)
    report = [e for e in at.expander if e.label.startswith("Import report")]
    assert report and "1 frames without a detected face" in report[0].label
    assert int(at.metric[0].value) == n_real + 1 - len(json.loads((tmp_path / "data" / "youtube68.csv.gz.report.json")
                                                                  .read_text())["no_face"])


def test_skipping_small_windows_finds_the_same_box_as_the_full_scan(small_68_set):
    from core.detector import FaceDetector
    from trainer.importer import FrameSource, best_box, matching_box

    zip_path, _ = small_68_set
    source, detector = FrameSource(zip_path), FaceDetector()
    names, points = source.read_labels()
    found = 0
    for name, pts in zip(names, points):
        gray = source.read_gray(name)
        full, fast = best_box(detector.detect(gray), pts), matching_box(detector, gray, pts)
        assert (full is None and fast is None) or (full == fast).all(), name
        found += full is not None
    assert found >= len(names) - 2
