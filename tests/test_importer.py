"""68-point import on real frames (when ../shared is present) and on a made-up frame with no face."""
import json

import numpy as np
import pytest

from core.schema import INDEX
from trainer.data import read_kaggle_csv
from tests.helpers import small_68_zip
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
