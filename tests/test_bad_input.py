"""Bad input fed to the app, the CLIs and the trainer (issue 12): each gets a clear message, never a
traceback, and nothing already saved changes: the active model, other runs, other uploads.

Corrupt, empty and huge images, malformed CSV rows and safe_mode loading are covered by
test_pipeline, test_data and test_model; the server's bound address by test_safe_server.
"""
import gzip
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from core.model import ModelError, model_file_problem, onnx_path_for, validate_model
from core.registry import POINTER_NAME, activate, safe_run_dir
from core.userfiles import PathNotAllowed, prune_uploads, resolve_server_path, save_upload, stored_name
from tests.conftest import REPO
from tests.helpers import synthetic_faces, write_synthetic_csv
from trainer import jobs, runfolders
from trainer.architecture import build_model
from trainer.config import RecipeConfig, config_for
from trainer.data import DatasetError, read_kaggle_csv, write_kaggle_csv
from trainer.export import save_model
from trainer.recipe import train
from trainer.runs import Run, RunBusyError

TINY_WIDTHS = (4, 4, 8, 8, 8)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes: what must be unchanged after a refused input."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def run_cli(module: str, args: list[str], runs: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "FKS_RUNS_DIR": str(runs), **env})


def assert_refused(out: subprocess.CompletedProcess, message: str) -> None:
    """Exit 2, the message on stderr's last line, no traceback."""
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert message in out.stderr.strip().splitlines()[-1], out.stderr[-2000:]
    assert "Traceback" not in out.stderr


@pytest.fixture
def runs(tmp_path, monkeypatch, tiny_model_path):
    """A runs folder holding a finished run 'good' that is the active model."""
    root = tmp_path / "runs"
    monkeypatch.setenv("FKS_RUNS_DIR", str(root))
    monkeypatch.delenv("FKS_MODEL", raising=False)
    good = root / "good"
    good.mkdir(parents=True)
    (good / "model.keras").write_bytes(tiny_model_path.read_bytes())
    (good / "model.onnx").write_bytes(onnx_path_for(tiny_model_path).read_bytes())
    (good / "config.json").write_text(json.dumps(RecipeConfig(widths=(8, 16, 32, 64, 128)).to_dict()))
    (good / "model.json").write_text(json.dumps({"metrics": {"test_rmse_px": 3.0}, "data": {}, "wall_s": 60}))
    activate("good")
    return root


def open_page(script: str):
    """The app headless (streamlit's AppTest) from its entry point, switched to `script`, after one run."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    return at if script == "app.py" else at.switch_page(script).run()


def save_broken_model(path: Path, bias: float) -> Path:
    """A keypoint model whose output is its Dense bias (NaN: non-finite; 100: far outside the crop)."""
    model = build_model(TINY_WIDTHS)
    weights = model.get_weights()
    weights[-2] = np.zeros_like(weights[-2])
    weights[-1] = np.full_like(weights[-1], bias)
    model.set_weights(weights)
    return save_model(model, path)  # with its ONNX twin, which the app would run


# ---------------------------------------------------------------- models: never activate or ship a broken one

@pytest.mark.parametrize("bias, message", [(np.nan, "non-finite keypoints"), (100.0, "outside the 96x96 face crop")])
def test_a_model_with_broken_output_is_never_activated_or_shipped(runs, tmp_path, bias, message):
    save_broken_model(runs / "broken" / "model.keras", bias)
    (runs / "broken" / "model.json").write_text(json.dumps({"data": {}, "metrics": {}}))
    before = snapshot(runs)
    with pytest.raises(ModelError, match=message):
        activate("broken")
    from trainer.ship import ship

    target = tmp_path / "models" / "keypoints.keras"
    with pytest.raises(ModelError, match=message):
        ship("broken", target=target)
    assert not target.parent.exists()
    out = run_cli("trainer", ["activate", "broken"], runs)
    assert_refused(out, message)
    assert snapshot(runs) == before  # still the good model active, nothing rewritten


def test_a_corrupt_model_file_is_called_unreadable_everywhere(runs, tmp_path):
    corrupt = runs / "corrupt" / "model.keras"
    corrupt.parent.mkdir()
    corrupt.write_bytes(b"PK\x03\x04 this is not a keras archive" * 50)
    before = snapshot(runs)
    assert model_file_problem(corrupt) == "unreadable" and model_file_problem(tmp_path / "none.keras") == "missing"
    with pytest.raises(ModelError, match="unreadable"):
        validate_model(corrupt)
    assert_refused(run_cli("trainer", ["activate", "corrupt"], runs), "unreadable")
    photo = tmp_path / "face.png"
    import cv2

    cv2.imwrite(str(photo), np.full((64, 64, 3), 128, np.uint8))
    out = run_cli("core", ["annotate", str(photo), "--out", str(tmp_path / "out"), "--model", str(corrupt)], runs)
    assert_refused(out, "unreadable")
    assert "not found" not in out.stderr.lower()
    assert snapshot(runs) == before


def test_home_page_shows_the_active_model_is_unreadable(runs, monkeypatch):
    corrupt = runs / "good" / "model.keras"
    corrupt.write_bytes(corrupt.read_bytes()[:5000])  # truncated: the pointer still names it
    at = open_page("app.py")
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert "unreadable" in errors and "model.keras" in errors and str(runs) not in errors
    assert "No trained model was found" not in errors


# ---------------------------------------------------------------- keypoints and files read for training

@pytest.mark.parametrize("value", [np.inf, -np.inf, 1e12, -500.0])
def test_non_finite_and_absurd_keypoints_are_refused_with_row_and_column(tmp_path, value):
    data = synthetic_faces(6)
    data.keypoints[2, 0, 1] = value  # row 3, left_eye_center_y
    path = write_kaggle_csv(data, tmp_path / "bad.csv")
    with pytest.raises(DatasetError, match=r"Row 3, column 'left_eye_center_y'.*crop pixels from -96 to 192"):
        read_kaggle_csv(path)


def test_missing_keypoints_and_points_just_outside_the_crop_are_still_data(tmp_path):
    data = synthetic_faces(6, incomplete_every=2)
    data.keypoints[0, 0, 0] = -3.5
    read = read_kaggle_csv(write_kaggle_csv(data, tmp_path / "ok.csv"))
    assert np.isnan(read.keypoints).any() and read.keypoints[0, 0, 0] == pytest.approx(-3.5)


def corrupt_files(folder: Path) -> dict[str, Path]:
    """A .csv.gz whose deflate body is damaged, and a .zip whose CSV fails its CRC check."""
    good = write_kaggle_csv(synthetic_faces(20), folder / "good.csv").read_bytes()
    body = bytearray(gzip.compress(good))
    for i in range(200, 2000, 7):
        body[i] ^= 0xFF
    (folder / "damaged.csv.gz").write_bytes(body)
    with zipfile.ZipFile(folder / "crc.zip", "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("training.csv", good)
    body = bytearray((folder / "crc.zip").read_bytes())
    body[5000] ^= 0xFF
    (folder / "crc.zip").write_bytes(body)
    return {"damaged.csv.gz": folder / "damaged.csv.gz", "crc.zip": folder / "crc.zip"}


def test_corrupt_gzip_and_zip_bodies_are_dataset_errors_and_trainer_exit_2(tmp_path, runs):
    files = corrupt_files(tmp_path)
    with pytest.raises(DatasetError, match="compressed file is corrupt"):
        read_kaggle_csv(files["damaged.csv.gz"])
    with pytest.raises(DatasetError, match="zip file is corrupt.*CRC"):
        read_kaggle_csv(files["crc.zip"])
    before = snapshot(runs)
    for i, (name, message) in enumerate([("damaged.csv.gz", "compressed file is corrupt"), ("crc.zip", "CRC")]):
        out = run_cli("trainer", ["train", "--preset", "quick", "--data", str(files[name]), "--run", f"bad-{i}"], runs)
        assert_refused(out, message)
        assert not (runs / f"bad-{i}" / "model.keras").exists()
    assert {k: v for k, v in snapshot(runs).items() if not k.startswith("bad-")} == before


def test_dataset_page_refuses_outside_paths_and_explains_corrupt_files(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    files = corrupt_files(data)
    monkeypatch.setenv("FKS_DATA_DIR", str(data))
    at = open_page("pages/dataset.py")
    at.radio(key="dataset-src").set_value("Path on the server").run()
    for typed, message in [("/etc/passwd", "Only files inside the app's data folders"),
                           (str(files["damaged.csv.gz"]), "compressed file is corrupt"),
                           (str(files["crc.zip"]), "zip file is corrupt")]:
        at.text_input(key="dataset-path").input(typed).run()
        assert not at.exception, typed
        errors = " ".join(e.value for e in at.error)
        assert message in errors and "Traceback" not in errors and str(tmp_path) not in errors, errors


# ---------------------------------------------------------------- server paths and uploads

def test_server_paths_are_confined_to_the_data_folders(tmp_path, monkeypatch):
    data, extra = tmp_path / "data", tmp_path / "extra"
    data.mkdir()
    extra.mkdir()
    monkeypatch.setenv("FKS_DATA_DIR", str(data))
    monkeypatch.delenv("FKS_ALLOWED_DATA_DIRS", raising=False)
    inside = write_synthetic_csv(data / "faces.csv", n=4)
    (data / "link.csv").symlink_to("/etc/passwd")
    outside = write_synthetic_csv(extra / "faces.csv", n=4)
    assert resolve_server_path(str(inside)) == inside.resolve()
    for typed in ["/etc/passwd", "/proc/self/environ", str(data / "link.csv"), str(data / ".." / "extra" / "faces.csv"),
                  "../../../../etc/shadow", str(outside)]:
        with pytest.raises(PathNotAllowed) as refused:
            resolve_server_path(typed)
        message = str(refused.value)
        assert "data folders" in message and "/etc" not in message and str(tmp_path) not in message
    with pytest.raises(PathNotAllowed, match="There is no file"):
        resolve_server_path(str(data / "missing.csv"))
    monkeypatch.setenv("FKS_ALLOWED_DATA_DIRS", os.pathsep.join([str(extra), str(tmp_path / "elsewhere")]))
    assert resolve_server_path(str(outside)) == outside.resolve()


def test_uploads_of_one_name_never_collide_and_keep_their_bytes(tmp_path):
    folder = tmp_path / "uploads"
    first = write_synthetic_csv(tmp_path / "a.csv", n=4, seed=1).read_bytes()
    second = write_synthetic_csv(tmp_path / "b.csv", n=4, seed=2).read_bytes()
    path_a, path_b = save_upload(first, "training.csv", folder), save_upload(second, "training.csv", folder)
    assert path_a != path_b and path_a.read_bytes() == first and path_b.read_bytes() == second
    assert save_upload(first, "training.csv", folder) == path_a and len(list(folder.iterdir())) == 2
    assert save_upload(first, "../../etc/evil name.csv", folder).parent == folder


def test_a_long_upload_name_keeps_its_extension_and_is_read_as_gzip(tmp_path):
    name = "k" * 87 + ".csv.gz"
    assert len(name) == 94
    content = write_synthetic_csv(tmp_path / "x.csv.gz", n=5).read_bytes()
    path = save_upload(content, name, tmp_path / "uploads")
    assert path.name.endswith(".csv.gz") and len(path.name) <= 80 and path.name == stored_name(name, path.name[:12])
    assert len(read_kaggle_csv(path)) == 5


def test_old_and_excess_uploads_are_pruned_and_the_new_one_kept(tmp_path):
    folder = tmp_path / "uploads"
    now = time.time()
    paths = [save_upload(bytes([i]) * 1000, f"u{i}.csv", folder) for i in range(4)]
    for age_days, path in zip((30, 3, 2, 1), paths):
        os.utime(path, (now - age_days * 86400,) * 2)
    removed = prune_uploads(folder, keep=paths[3], max_age_s=7 * 86400, budget_bytes=2500, now=now)
    assert removed == paths[:2]  # too old, then the oldest until 2 files (2000 bytes) fit the budget
    assert sorted(folder.iterdir()) == sorted(paths[2:]) and paths[2].read_bytes() == bytes([2]) * 1000


# ---------------------------------------------------------------- runs

@pytest.mark.parametrize("name", ["shipped", "Shipped", "active_model.txt", "Active_Model.TXT"])
def test_reserved_names_cannot_be_runs(runs, name):
    before = snapshot(runs)
    with pytest.raises(ValueError, match="reserved"):
        safe_run_dir(name)
    with pytest.raises(ValueError, match="reserved"):
        jobs.start(name, RecipeConfig(data="x.csv").to_dict(), runs)
    assert snapshot(runs) == before


def test_cli_refuses_a_reserved_name_and_activate_shipped_means_the_shipped_model(runs, tmp_path):
    data = write_synthetic_csv(tmp_path / "d.csv", n=20, people=5)
    before = snapshot(runs)
    assert_refused(run_cli("trainer", ["train", "--preset", "quick", "--data", str(data), "--run", "shipped"], runs),
                   "reserved")
    assert snapshot(runs) == before and not (runs / "shipped").exists()
    (runs / "shipped").mkdir()  # a run folder of that name made before the name was reserved
    (runs / "shipped" / "model.keras").write_bytes((runs / "good" / "model.keras").read_bytes())
    assert activate("shipped").parent.name == "models"


def test_a_run_folder_named_like_the_pointer_gives_a_clear_refusal(runs):
    (runs / POINTER_NAME).unlink()
    (runs / POINTER_NAME).mkdir()  # made before the name was reserved
    with pytest.raises(ModelError, match="rename it"):
        activate("good")


def test_untrainable_configs_are_refused_before_any_file_is_written(runs, tmp_path):
    data = write_synthetic_csv(tmp_path / "d.csv", n=20, people=5)
    for fields, message in [(dict(widths=(8, 100_000)), "model widths"), (dict(widths=(8,) * 7), "model widths"),
                            (dict(test_size=-5), "held-out test size"), (dict(epochs_per_stage=0), "epochs per stage"),
                            (dict(learning_rates=(float("nan"),)), "learning rates"), (dict(batch_sizes=()), "batch size")]:
        with pytest.raises(ValueError, match=message):
            config_for("quick", **fields)
    before = snapshot(runs)
    with pytest.raises(ValueError, match="model widths"):
        jobs.start("wide", {**RecipeConfig(data=str(data)).to_dict(), "widths": [8, 99999]}, runs)  # the page's way in
    out = run_cli("trainer", ["train", "--preset", "quick", "--data", str(data), "--run", "wide", "--widths", "8,99999"], runs)
    assert_refused(out, "model widths must be")
    out = run_cli("trainer", ["train", "--preset", "quick", "--data", str(data), "--run", "neg", "--test-size", "-3"], runs)
    assert_refused(out, "held-out test size")
    assert snapshot(runs) == before


def test_broken_run_files_are_listed_as_broken_and_the_training_page_still_works(runs):
    bad_config, bad_card = runs / "bad-config", runs / "bad-card"
    bad_config.mkdir()
    (bad_config / "config.json").write_text("{not json")
    bad_card.mkdir()
    (bad_card / "config.json").write_text((runs / "good" / "config.json").read_text())
    (bad_card / "model.json").write_text("[1, 2]")
    (bad_card / "model.keras").write_bytes((runs / "good" / "model.keras").read_bytes())
    now = time.time()
    for age, path in enumerate([bad_card, bad_config, runs / "good"]):  # the broken card is the newest run
        os.utime(path / "config.json", (now - age * 60,) * 2)
    table = runfolders.list_runs(runs).set_index("run")
    assert table.loc["bad-card", "status"] == "broken" and "not a model card" in table.loc["bad-card", "problem"]
    assert table.loc["bad-config", "status"] == "broken" and "config.json" in table.loc["bad-config", "problem"]
    assert table.loc["good", "status"] == "finished" and not isinstance(table.loc["good", "problem"], str)
    with pytest.raises(ModelError, match="No model file"):
        activate("bad-config")  # no model: refused, the pointer stays
    before = snapshot(runs)

    at = open_page("pages/training.py")
    assert not at.exception
    assert any("cannot be shown" in w.value and "model.json" in w.value for w in at.warning)
    assert snapshot(runs) == before
    [shipped] = [b for b in at.button if b.label == "Use the shipped model"]
    shipped.click().run()
    assert not at.exception and any("shipped model is active" in s.value for s in at.success)
    assert (runs / POINTER_NAME).read_text().endswith("models/keypoints.keras")


def test_a_second_writer_of_a_run_is_refused_and_changes_nothing(runs, tmp_path):
    data = write_synthetic_csv(tmp_path / "d.csv", n=20, people=5)
    config = config_for("quick", data=str(data), widths=TINY_WIDTHS, test_size=4, pseudo_label=False)
    holder = Run(runs / "busy")
    holder.lock_writer()  # this process is "training" the run
    try:
        holder.write_config(config)
        holder.write_job()
        (holder.events_path).write_text('{"event": "run_start"}\n')
        before = snapshot(runs)
        with pytest.raises(RunBusyError, match="being trained by another process"):
            train(config, runs / "busy")
        assert_refused(run_cli("trainer", ["train", "--run", "busy"], runs), "being trained by another process")
        with pytest.raises(jobs.BusyError, match="'busy' is still training"):
            jobs.start("busy", config.to_dict(), runs)  # the page's way in (it shows this message)
        assert snapshot(runs) == before
    finally:
        holder.unlock_writer()


def test_the_run_lock_goes_with_a_killed_process(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from trainer.runs import Run; "
                               f"Run({str(tmp_path / 'r')!r}).lock_writer(); print('locked', flush=True); time.sleep(600)"],
                              cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(RunBusyError):
        Run(tmp_path / "r").lock_writer()
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    run = Run(tmp_path / "r")
    run.lock_writer()
    run.unlock_writer()


def test_a_run_whose_loss_becomes_non_finite_fails_without_a_model(runs, tmp_path):
    data = write_synthetic_csv(tmp_path / "d.csv", n=40, people=10)
    (tmp_path / "cfg.json").write_text(json.dumps({"learning_rates": [1e12]}))  # Adam at 1e12 blows up at once
    before = snapshot(runs)
    out = run_cli("trainer", ["train", "--preset", "quick", "--config", str(tmp_path / "cfg.json"), "--data", str(data),
                              "--run", "diverged", "--widths", "4,4,8,8,8", "--epochs", "3", "--test-size", "8",
                              "--no-pseudo", "--quiet"], runs)
    assert_refused(out, "the loss became")
    run = runs / "diverged"
    assert not (run / "model.keras").exists() and not (run / "model.json").exists()
    assert runfolders.status(run) == "failed"
    assert runfolders.list_runs(runs).set_index("run").loc["diverged", "status"] == "failed"
    assert {k: v for k, v in snapshot(runs).items() if not k.startswith("diverged")} == before
    with pytest.raises(ModelError, match="No model file"):
        activate("diverged")


# ---------------------------------------------------------------- python -m core annotate

def test_annotate_keeps_same_stem_outputs_apart_and_skips_non_images(tmp_path, tiny_model_path):
    import cv2

    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    picture = np.full((80, 100, 3), 120, np.uint8)
    for name in ("photo.jpg", "photo.png", "sub/photo.jpg"):
        cv2.imwrite(str(folder / name), picture)
    (folder / "notes.txt").write_text("not an image")
    (folder / "data.csv").write_text("a,b\n")
    out_dir = tmp_path / "out"
    out = run_cli("core", ["annotate", str(folder), "--out", str(out_dir), "--model", str(tiny_model_path)], tmp_path / "runs")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "images: 3 annotated, 0 failed; faces: 0; 2 non-image files in the folders skipped" in out.stdout
    written = sorted(p.name for p in out_dir.glob("*.png"))
    assert written == ["photo_annotated.png", "photo_jpg_annotated.png", "photo_png_annotated.png"]

    existing = tmp_path / "taken.txt"
    existing.write_text("keep me")
    out = run_cli("core", ["annotate", str(folder), "--out", str(existing), "--model", str(tiny_model_path)], tmp_path / "runs")
    assert_refused(out, "is a file; give a folder")
    assert existing.read_text() == "keep me"
