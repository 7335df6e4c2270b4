"""`python -m trainer import-68`, `train` and `evaluate` end to end on a small zip of real frames (when ../shared
is present): the commands a person runs to rebuild the model, and their one-line errors on bad input."""
import json
import os
import subprocess
import sys
import zipfile

import cv2
import numpy as np
import pandas as pd
import pytest

from core.card import read_card
from tests.conftest import REPO
from tests.helpers import small_68_zip
from trainer.importer import person_of


def _trainer(args, tmp_path):
    return subprocess.run([sys.executable, "-m", "trainer", *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "FKS_RUNS_DIR": str(tmp_path / "runs")})


def _one_line_error(out, expected: str) -> None:
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    *progress, last = [line for line in out.stderr.replace("\r", "\n").splitlines() if line.strip()]
    assert last.startswith("error: ") and expected in last, out.stderr
    assert all(line.startswith("importing ") for line in progress), out.stderr  # the progress line, ended


@pytest.fixture(scope="module")
def frames(shared_data, tmp_path_factory):
    """Four people's real frames (about 40), enough for a train / validation / test person each."""
    return small_68_zip(shared_data / "youtube-faces-68" / "training.zip",
                        tmp_path_factory.mktemp("frames") / "small.zip", people=4, blank=True)


def test_import_train_and_evaluate_on_real_frames(frames, tmp_path):
    zip_path, n_real = frames
    csv = tmp_path / "faces.csv.gz"
    out = _trainer(["import-68", zip_path, "--out", csv], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout[:out.stdout.rindex("}") + 1])
    assert summary["frames"] == n_real + 1 and summary["no_face"] == 1 and summary["people"] == 4
    assert summary["imported"] >= n_real - 2
    assert f"wrote {csv}" in out.stdout and csv.is_file()
    report = json.loads((tmp_path / "faces.csv.gz.report.json").read_text())
    assert report["no_face"] == ["Nobody_00.jpg"]  # the blank frame is listed, not silently dropped
    assert (tmp_path / "faces.csv.gz.points68.npz").is_file()  # the 68 points beside it, for train --aux68

    out = _trainer(["train", "--preset", "quick", "--data", csv, "--run", "r68", "--test-size", "8",
                    "--widths", "4,8,8,16,16", "--no-pseudo", "--quiet"], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    model = tmp_path / "runs" / "r68" / "model.keras"
    first = read_card(model)
    test_people = first.data.test_people
    model_bytes = model.read_bytes()
    again = _trainer(["train", "--run", "r68", "--data", csv, "--quiet"], tmp_path)
    assert again.returncode == 2 and "Run 'r68' is finished" in again.stderr, again.stderr[-2000:]
    assert model.read_bytes() == model_bytes  # a finished run is never trained again
    assert read_card(model).config == first.config and read_card(model).data.test_people == test_people
    assert len(test_people) == 1  # split by person, never by frame

    out = _trainer(["evaluate", "--model", model, "--frames", zip_path], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    with zipfile.ZipFile(zip_path) as z:
        labelled = pd.read_csv(z.open("training_frames_keypoints.csv")).iloc[:, 0].map(person_of)
    assert result["frames"] == (labelled == test_people[0]).sum() >= 5  # the card's test person's frames, only
    assert 0.8 <= result["detection_rate"] <= 1.0 and result["detected"] == round(result["detection_rate"] * result["frames"])
    # one epoch on two people gives about the mean face (NME 0.56); crop-pixel points scored as image pixels give 1.4
    assert 0 < result["nme"] < 1.0 and set(result["per_keypoint_nme"]) >= {"left_eye_center", "nose_tip"}

    both = json.loads(_trainer(["evaluate", "--model", model, "--frames", zip_path, "--people", "both"], tmp_path).stdout)
    val_people = read_card(model).data.val_people
    assert both["test"]["frames"] == result["frames"] and both["test"]["nme"] == result["nme"]
    assert both["val"]["frames"] == labelled.isin(val_people).sum() >= 5  # the card's validation people's frames

    everyone = json.loads(_trainer(["evaluate", "--model", model, "--frames", zip_path, "--all-people",
                                    "--no-flip-average"], tmp_path).stdout)
    assert everyone["frames"] == n_real + 1 and everyone["flip_average"] is False


def test_bad_inputs_end_in_one_line(frames, tmp_path):
    zip_path, _ = frames
    _one_line_error(_trainer(["import-68", tmp_path / "absent.zip"], tmp_path), "absent.zip")
    (tmp_path / "not-a.zip").write_bytes(b"plain text, not a zip")
    _one_line_error(_trainer(["import-68", tmp_path / "not-a.zip"], tmp_path), "not-a.zip")
    no_csv = tmp_path / "no-csv.zip"
    with zipfile.ZipFile(no_csv, "w") as z:
        z.writestr("training/a_01.jpg", b"")
    _one_line_error(_trainer(["import-68", no_csv], tmp_path), "No *_keypoints.csv")
    (tmp_path / "short.csv").write_text("name,x0,y0\na_01.jpg,1,2\n")
    _one_line_error(_trainer(["import-68", zip_path, "--csv", tmp_path / "short.csv"], tmp_path), "136 coordinates")
    _one_line_error(_trainer(["evaluate", "--model", tmp_path / "none.keras", "--frames", zip_path], tmp_path),
                    "none.keras")


def test_import_from_a_folder_with_its_csv_beside_it_lists_missing_frames_and_adds_jitter_copies(frames, tmp_path):
    zip_path, n_real = frames
    folder = tmp_path / "frames"
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(folder)
    labels = folder / "training_frames_keypoints.csv"
    labels.rename(tmp_path / "labels.csv")
    missing = sorted((folder / "training").glob("*.jpg"))[0]
    missing.unlink()  # listed in the CSV, not on disk
    out = _trainer(["import-68", folder / "training", "--csv", tmp_path / "labels.csv", "--out", tmp_path / "f.csv",
                    "--jitter-copies", "1", "--jitter-shift", "0.1,0.05"], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads((tmp_path / "f.csv.report.json").read_text())
    assert report["unreadable"] == [missing.name] and report["frames"] == n_real + 1
    assert report["jitter"]["copies"] == 1 and report["jitter"]["shift_sd"] == [0.1, 0.05]
    assert report["imported"] < report["rows"] <= 2 * report["imported"]
    assert report["command"].startswith("python -m trainer import-68 ")  # what a model card cites


def test_train_without_data_says_how_to_import_it(tmp_path):
    out = subprocess.run([sys.executable, "-m", "trainer", "train", "--run", "x"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO),
                                                      "FKS_RUNS_DIR": str(tmp_path / "runs")})
    _one_line_error(out, "No training data at data/youtube68.csv.gz. Import the YouTube-faces frames first: "
                         "python -m trainer import-68")


def test_a_source_where_no_frame_has_a_face_is_refused(tmp_path):
    blank = cv2.imencode(".jpg", np.full((200, 200), 128, np.uint8))[1].tobytes()
    header = "name," + ",".join(f"v{i}" for i in range(136))
    row = "Nobody_00.jpg," + ",".join(["50"] * 136)
    with zipfile.ZipFile(tmp_path / "blank.zip", "w") as z:
        z.writestr("training/Nobody_00.jpg", blank)
        z.writestr("training_frames_keypoints.csv", f"{header}\n{row}\n")
    _one_line_error(_trainer(["import-68", tmp_path / "blank.zip", "--out", tmp_path / "x.csv"], tmp_path),
                    "No face was detected in any frame")
    assert not (tmp_path / "x.csv").exists()
