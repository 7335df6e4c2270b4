"""Hostile files and states (issue 22): each is refused or listed with a message, and nothing already
saved is lost. Concurrency is tested in test_concurrency; the host allow-list in test_safe_server."""
from __future__ import annotations

import gzip
import json
import re
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.schema import COORD_COLUMNS, IMAGE_COLUMN
from tests.helpers import synthetic_faces, wait_until, write_synthetic_csv
from trainer import data as data_module
from trainer import jobs, runfolders
from trainer.data import DatasetError, read_kaggle_csv, write_kaggle_csv
from trainer.recipe import RecipeConfig

HEADER = ",".join([*COORD_COLUMNS, IMAGE_COLUMN])


def _row(pixels: str) -> str:
    return ",".join(["40"] * len(COORD_COLUMNS)) + "," + pixels


# ---------------------------------------------------------------- item 2: memory bombs in training files

def test_a_long_pixel_line_is_refused_before_it_is_split(tmp_path):
    path = tmp_path / "line.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write(HEADER + "\n" + _row("1 " * 5_000_000) + "\n")
    assert path.stat().st_size < 100_000
    with pytest.raises(DatasetError, match="A line of the file is longer than 128 KB"):
        read_kaggle_csv(path)


def test_rows_beyond_the_limit_are_refused_and_the_limit_is_stated(tmp_path, monkeypatch):
    path = write_synthetic_csv(tmp_path / "faces.csv.gz", n=30)
    monkeypatch.setattr(data_module, "CHUNK_ROWS", 8)  # the limit holds across chunks
    monkeypatch.setenv("FKS_DATASET_MAX_ROWS", "29")
    with pytest.raises(DatasetError, match=r"more than 29 rows, the most this app reads \(FKS_DATASET_MAX_ROWS"):
        read_kaggle_csv(path)
    monkeypatch.setenv("FKS_DATASET_MAX_ROWS", "30")
    assert len(read_kaggle_csv(path)) == 30
    monkeypatch.delenv("FKS_DATASET_MAX_ROWS")
    assert data_module.max_rows() == 50_000


def test_chunked_reading_keeps_every_row_label_person_and_frame(tmp_path, monkeypatch):
    faces = synthetic_faces(23, incomplete_every=3, people=4)
    faces.frames = np.array([f"f{i}" for i in range(23)])
    path = write_kaggle_csv(faces, tmp_path / "faces.csv.gz")
    monkeypatch.setattr(data_module, "CHUNK_ROWS", 5)
    back = read_kaggle_csv(path)
    assert np.array_equal(back.images, faces.images)
    np.testing.assert_allclose(back.keypoints, faces.keypoints, atol=1e-3)
    assert back.groups is not None and back.frames is not None and faces.groups is not None
    assert list(back.groups) == list(faces.groups) and list(back.frames) == list(faces.frames)
    bad = synthetic_faces(12)
    bad.keypoints[10, 3, 0] = 1e9  # row 11, in the third chunk of 5
    with pytest.raises(DatasetError, match=r"Row 11, column 'left_eye_outer_corner_x': 1e\+09 is not"):
        read_kaggle_csv(write_kaggle_csv(bad, tmp_path / "bad.csv"))


# ---------------------------------------------------------------- item 9: silent pixel casts, two CSVs in a zip

@pytest.mark.parametrize("value, message", [("nan", "pixel 6 is nan"), ("1.7", "pixel 6 is 1.7"),
                                            ("inf", "pixel 6 is inf")])
def test_pixels_that_are_not_whole_numbers_are_refused(tmp_path, value, message):
    pixels = ["10"] * 9216
    pixels[5] = value
    path = tmp_path / "faces.csv"
    path.write_text(HEADER + "\n" + _row("10 " * 9216) + "\n" + _row(" ".join(pixels)) + "\n")
    with pytest.raises(DatasetError, match=f"Row 2, column 'Image': {message}; pixel values are whole numbers"):
        read_kaggle_csv(path)
    pixels[5] = "12.0"  # a whole number written as a float is still a pixel
    path.write_text(HEADER + "\n" + _row(" ".join(pixels)) + "\n")
    assert read_kaggle_csv(path).images[0].reshape(-1)[5] == 12


def test_a_zip_with_two_csv_files_names_them_instead_of_reading_the_first(tmp_path):
    one = write_synthetic_csv(tmp_path / "a.csv", n=3).read_bytes()
    with zipfile.ZipFile(tmp_path / "two.zip", "w") as archive:
        archive.writestr("train.csv", one)
        archive.writestr("more/extra.csv", one)
    with pytest.raises(DatasetError, match=r"holds 2 \.csv files \(train\.csv, more/extra\.csv\)"):
        read_kaggle_csv(tmp_path / "two.zip")
    with zipfile.ZipFile(tmp_path / "one.zip", "w") as archive:
        archive.writestr("train.csv", one)
        archive.writestr("__MACOSX/._train.csv", b"\0")
    assert len(read_kaggle_csv(tmp_path / "one.zip")) == 3


# ---------------------------------------------------------------- item 4: job.json names a process by more than its pid

@pytest.fixture
def bystander():
    """A live process that has nothing to do with training (what a stale or edited job.json may name)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield process
    process.kill()
    process.wait()


def _finished_run(root: Path, name: str) -> Path:
    path = root / name
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(RecipeConfig().to_dict()))
    (path / "events.jsonl").write_text('{"event": "run_start"}\n')
    return path


@pytest.mark.parametrize("job", [
    "pid only", "wrong start time", "wrong command line", -1, 1, True, "abc", [1, 2], {"pid": [1]},
    {"pid": True, "create_time": 1.0, "cmdline": []}, {"pid": 1, "create_time": "x", "cmdline": []}])
def test_a_job_file_naming_another_process_is_not_running_and_cancel_signals_nothing(tmp_path, bystander, job):
    root = tmp_path / "runs"
    run = _finished_run(root, "stale")
    real = runfolders.process_identity(bystander.pid)
    job = {"pid only": {"pid": bystander.pid, "started": time.time()},
           "wrong start time": {**real, "create_time": real["create_time"] - 5},
           "wrong command line": {**real, "cmdline": [sys.executable, "-m", "trainer", "train", "--run", "stale"]},
           }.get(job, job) if isinstance(job, str) else job
    (run / "job.json").write_text(json.dumps(job))
    assert runfolders.status(run) == "stopped"
    assert jobs.running_run(root) is None
    assert runfolders.list_runs(root).set_index("run").loc["stale", "status"] == "stopped"
    jobs.cancel("stale", root)
    time.sleep(0.2)
    assert bystander.poll() is None, "Cancel signalled a process that is not the run's trainer"
    assert (run / "config.json").is_file() and (run / "CANCEL").is_file()


def test_the_process_a_job_file_identifies_is_running_and_the_only_one_cancel_stops(tmp_path, bystander):
    root = tmp_path / "runs"
    run = _finished_run(root, "live")
    (run / "job.json").write_text(json.dumps({**runfolders.process_identity(bystander.pid), "started": 0}))
    assert runfolders.status(run) == "running" and jobs.running_run(root) == "live"
    with pytest.raises(jobs.BusyError, match="'live' is still training"):
        jobs.start("other", RecipeConfig(data="x.csv").to_dict(), root)
    assert not (root / "other").exists()
    jobs.cancel("live", root)
    assert bystander.wait(10) == -signal.SIGTERM


def test_two_starts_at_the_same_moment_train_one_run(tmp_path):
    data = write_synthetic_csv(tmp_path / "d.csv", n=40, people=10)
    config = dict(data=str(data), widths=(8, 8, 8, 8, 8), epochs_per_stage=200, test_size=8, pseudo_label=False)
    root = tmp_path / "runs"
    root.mkdir()
    go, outcomes = threading.Barrier(2), {}

    def start(name: str) -> None:
        go.wait()
        try:
            jobs.start(name, config, root)
            outcomes[name] = "started"
        except jobs.BusyError as exc:
            outcomes[name] = str(exc)

    threads = [threading.Thread(target=start, args=(n,)) for n in ("one", "two")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        started = [n for n, o in outcomes.items() if o == "started"]
        assert len(started) == 1, outcomes
        [other] = {"one", "two"} - set(started)
        assert f"Run '{started[0]}' is still training" in outcomes[other] and not (root / other).exists()
        job = json.loads((root / started[0] / "job.json").read_text())
        assert job["cmdline"][-4:] == ["--config", str(root / started[0] / "config.json"), "--run", started[0]]
    finally:
        for name in outcomes:
            if (root / name).exists():
                jobs.cancel(name, root)
        for name in outcomes:
            if (root / name).exists():
                wait_until(lambda n=name: runfolders.status(root / n) != "running", 60, "the job to stop")


# ---------------------------------------------------------------- item 3: bombs inside an archive's model

def _keras_with(tmp_path: Path, name: str, config=None, extra_config_bytes: int = 0, weights: bytes | None = None,
                extra: dict | None = None) -> bytes:
    """A real small keypoint model's .keras bytes with its config, weight file or members replaced."""
    from trainer.architecture import build_model

    good = tmp_path / "good.keras"
    if not good.exists():
        build_model((4, 4, 8, 8, 8)).save(good)
    out = tmp_path / name
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "config.json":
                text = json.dumps(config(json.loads(data)) if config else json.loads(data))
                data = (text[:-1] + " " * extra_config_bytes + "}").encode()
            if info.filename == "model.weights.h5" and weights is not None:
                data = weights
            dst.writestr(info.filename, data)
        for member, data in (extra or {}).items():
            dst.writestr(member, data)
    return out.read_bytes()


def _widen_dense(config: dict) -> dict:
    def walk(item):
        if isinstance(item, dict):
            if item.get("class_name") == "Dense":
                item["config"]["units"] = 60_000
            for value in item.values():
                walk(value)
        elif isinstance(item, list):
            for value in item:
                walk(value)
    walk(config)
    return config


def _huge_weights(tmp_path: Path) -> bytes:
    """An h5 weight file whose one array declares 100,000 x 2,000 float32 (800 MB) and stores almost nothing."""
    import h5py

    path = tmp_path / "huge.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("layers/dense/vars/0", shape=(100_000, 2_000), dtype="float32", chunks=(1000, 200),
                         compression="gzip")
    return path.read_bytes()


def test_bombs_inside_the_model_of_an_archive_are_refused_before_keras_builds_it(tmp_path, monkeypatch):
    from core.model import ModelError
    from trainer.archive import ArchiveError, import_archive
    from trainer.export import load_keras_model

    root = tmp_path / "runs"
    root.mkdir()
    (root / "kept").mkdir()
    (root / "kept" / "config.json").write_text("{}")
    card = json.dumps({"model": "model.keras", "run": "x", "architecture": {"widths": [4, 4, 8, 8, 8]}})
    cases = [
        (_keras_with(tmp_path, "big.keras", extra_config_bytes=3 * 2**20),
         "its config.json is 3.0 MB uncompressed; the limit is 1 MB"),
        (_keras_with(tmp_path, "wide.keras", config=_widen_dense),
         "its config declares units=60000 in keypoints; the limit is 4096"),
        (_keras_with(tmp_path, "h5.keras", weights=_huge_weights(tmp_path)),
         "its weight arrays declare 763 MB; the limit is 256 MB"),
        (_keras_with(tmp_path, "more.keras", extra={"assets/x.bin": b"x"}),
         "it holds files a Keras model does not (assets/x.bin)"),
    ]
    for model_bytes, message in cases:
        assert len(model_bytes) < 2 * 2**20  # small on the wire
        archive = tmp_path / "bomb.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("model.keras", model_bytes)
            zf.writestr("model.json", card)
        with pytest.raises(ArchiveError, match=f"refused before loading: {re.escape(message)}"):
            import_archive(archive, "incoming", root)
        assert sorted(p.name for p in root.iterdir()) == ["kept"]  # no run, no staging folder left
        (tmp_path / "m.keras").write_bytes(model_bytes)
        with pytest.raises(ModelError, match=re.escape(message)):
            load_keras_model(tmp_path / "m.keras")  # activate, ship and the app load models through it too
    assert load_keras_model(tmp_path / "good.keras").output_shape[-1] == 30


# ---------------------------------------------------------------- item 7 and 9: run names, relative runs folder

@pytest.mark.parametrize("name", ["shipped\n", "evil\n", "ok\n", "a\nb", "x\r"])
def test_run_names_with_a_line_break_are_refused_everywhere(tmp_path, name):
    from core.registry import safe_run_dir
    from trainer.archive import ArchiveError, import_archive

    root = tmp_path / "runs"
    root.mkdir()
    with pytest.raises(ValueError, match="is not allowed"):
        safe_run_dir(name, root)
    with pytest.raises(ValueError, match="is not allowed"):
        jobs.start(name, RecipeConfig(data="x.csv").to_dict(), root)
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("model.keras", b"not checked before the name")
        zf.writestr("model.json", json.dumps({"model": "model.keras", "run": name}))
    with pytest.raises(ArchiveError, match="is not allowed.*Choose a run name"):
        import_archive(archive, None, root)
    assert list(root.iterdir()) == []


def test_a_relative_runs_folder_is_the_same_folder_for_the_page_and_the_trainer(tmp_path, monkeypatch):
    from core.paths import REPO_ROOT, runs_dir

    data = write_synthetic_csv(tmp_path / "d.csv", n=40, people=10)
    monkeypatch.chdir(tmp_path)  # the server was started here; the trainer runs in the repository
    monkeypatch.setenv("FKS_RUNS_DIR", "rel-runs")
    assert runs_dir() == tmp_path / "rel-runs"
    config = dict(data=str(data), widths=(8, 8, 8, 8, 8), epochs_per_stage=200, test_size=8, pseudo_label=False)
    path = jobs.start("elsewhere", config)
    try:
        assert path == tmp_path / "rel-runs" / "elsewhere"
        wait_until(lambda: (path / "events.jsonl").is_file(), 120, "the trainer's first event in the page's folder",
                   detail=lambda: (path / "log.txt").read_text()[-2000:])
        assert runfolders.status(path) == "running" and jobs.running_run() == "elsewhere"
        assert not (REPO_ROOT / "rel-runs").exists()
    finally:
        jobs.cancel("elsewhere")
        wait_until(lambda: runfolders.status(path) != "running", 60, "the job to stop")


# ---------------------------------------------------------------- item 6: one bad file never breaks a page

def _open_page(script: str):
    from streamlit.testing.v1 import AppTest

    from tests.conftest import REPO

    return AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run().switch_page(script).run()


def test_bad_run_folders_are_listed_with_their_problem_and_the_training_page_works(tmp_path, monkeypatch,
                                                                                   tiny_model_path):
    import os

    root = tmp_path / "runs"
    monkeypatch.setenv("FKS_RUNS_DIR", str(root))
    monkeypatch.delenv("FKS_MODEL", raising=False)
    config = json.dumps(RecipeConfig(widths=(8, 16, 32, 64, 128)).to_dict())
    for name in ("shipped", "my run", "job-list", "elsewhere-target"):
        (root / name).mkdir(parents=True)
        (root / name / "config.json").write_text(config)
    (root / "job-list" / "job.json").write_text("[1, 2]")
    (root / "linked").symlink_to(root / "elsewhere-target")
    (root / "elsewhere-target").rename(tmp_path / "outside")
    (root / "linked").unlink()
    (root / "linked").symlink_to(tmp_path / "outside")
    good = root / "good"
    good.mkdir()
    (good / "config.json").write_text(config)
    (good / "model.keras").write_bytes(tiny_model_path.read_bytes())
    (good / "model.json").write_text(json.dumps({"metrics": {"test_rmse_px": 3.0}, "data": {}, "wall_s": 60}))
    (good / "test_faces.npz").write_bytes(b"PK\x03\x04 not really a zip")
    (good / "log.txt").write_text(f"reading {root}/good/config.json\n"
                                  f'  File "{tmp_path}/venv/lib/python3.11/site-packages/keras/x.py", line 1\n')
    now = time.time()
    for age, name in enumerate(["good", "job-list", "shipped", "my run", "linked"]):
        os.utime(root / name / "config.json", (now - age * 60,) * 2)
    before = {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    table = runfolders.list_runs(root).set_index("run")
    assert table.loc["good", "status"] == "finished" and table.loc["job-list", "status"] == "stopped"
    assert "reserved" in table.loc["shipped", "problem"] and "is not allowed" in table.loc["my run", "problem"]
    assert "symbolic link" in table.loc["linked", "problem"]
    assert {table.loc[n, "status"] for n in ("shipped", "my run", "linked")} == {"broken"}

    at = _open_page("pages/training.py")
    assert not at.exception, at.exception
    assert any("test_faces.npz is unreadable" in w.value for w in at.warning)
    log = " ".join(c.value for c in at.code)
    assert "runs/good/config.json" in log and ".../x.py" in log and str(tmp_path) not in log
    assert any(s.value == "Run 'good': finished" for s in at.subheader)
    [watch] = [s for s in at.selectbox if s.label == "Watch run"]
    watch.set_value("my run").run()  # watch a broken run: its problem, not a traceback
    assert not at.exception and any("is not allowed" in w.value for w in at.warning)
    assert {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()} == before


def test_a_very_long_server_path_is_a_message_on_the_dataset_page(tmp_path, monkeypatch):
    monkeypatch.setenv("FKS_DATA_DIR", str(tmp_path / "data"))
    at = _open_page("pages/dataset.py")
    at.radio(key="dataset-src").set_value("Path on the server").run()
    for typed in ["data/" + "a" * 5000, "/" + "b/" * 3000, "data/x\x00y"]:
        at.text_input(key="dataset-path").input(typed).run()
        assert not at.exception, typed[:40]
        errors = " ".join(e.value for e in at.error)
        assert "There is no file" in errors or "Only files inside" in errors, errors
        assert len(errors) < 400 and str(tmp_path) not in errors


# ---------------------------------------------------------------- item 8: resume points that cannot be trusted

TINY: dict[str, Any] = dict(widths=(4, 8, 8, 16, 16), learning_rates=(1e-3, 1e-4), batch_sizes=(16,),
                            epochs_per_stage=2, pseudo_stages=((1e-4, 16),), final_stages=((1e-5, 16),), test_size=8,
                            val_fraction=0.2)


def test_bad_resume_points_are_refused_and_a_finished_run_is_never_retrained(tmp_path):
    from trainer import events as ev
    from trainer.recipe import Cancelled, train
    from trainer.runs import RunStateError

    config = RecipeConfig(data=str(write_synthetic_csv(tmp_path / "tiny.csv", n=48, incomplete_every=4, people=12)),
                          **TINY)
    run = tmp_path / "run"
    cancel, seen = threading.Event(), []

    def stop_after_three_epochs(e: ev.Event) -> None:
        if isinstance(e, ev.EpochEnd):
            seen.append(e)
            if len(seen) == 3:
                cancel.set()

    with pytest.raises(Cancelled):
        train(config, run, ev.EventBus([stop_after_three_epochs]), cancel_event=cancel)
    time.sleep(1.0)  # a gap between the segments, which the card's wall time must count
    state, checkpoint = (run / "state.json").read_text(), (run / "checkpoint.keras").read_bytes()
    assert json.loads(state)["stage"] == 1

    def refused(message: str, state_text: str | None = None, checkpoint_bytes: bytes | None = checkpoint) -> None:
        (run / "state.json").write_text(state_text or state)
        (run / "checkpoint.keras").unlink(missing_ok=True)
        if checkpoint_bytes is not None:
            (run / "checkpoint.keras").write_bytes(checkpoint_bytes)
        with pytest.raises(RunStateError, match=message):
            train(config, run)
        assert not (run / "model.keras").exists()
        assert (run / "state.json").read_text() == (state_text or state)  # nothing the resume needs was touched

    refused("resumes at stage 1, epoch 1, but checkpoint.keras is missing, so its weights are lost",
            checkpoint_bytes=None)
    refused("resumes at stage 99, epoch 0, past the end of its recipe", '{"stage": 99, "epoch": 0}', None)
    refused("resumes at stage 5, epoch 0, past the end of its recipe", '{"stage": 5, "epoch": 0}')
    refused("resumes at stage 'x', epoch None; both must be whole numbers from 0", '{"stage": "x"}')
    refused("resumes at stage 0, epoch -6; both must be whole numbers from 0", '{"stage": 0, "epoch": -6}')
    refused(r"state.json is not a resume point \(a JSON object\)", "[1, 2]")
    refused("checkpoint.keras is damaged", checkpoint_bytes=checkpoint[: len(checkpoint) // 2])

    (run / "state.json").write_text(state)
    (run / "checkpoint.keras").write_bytes(checkpoint)
    card = train(config, run)
    events = ev.read_events(run / "events.jsonl")
    starts = [i for i, e in enumerate(events) if e["event"] == ev.RUN_START]
    done = [(e["stage"], e["epoch"]) for e in events if e["event"] == ev.EPOCH_END]
    assert done == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1), (3, 0), (3, 1)]  # nothing repeated or skipped
    first_end = [e for e in events[: starts[1]] if e["event"] != ev.ERROR][-1]  # the refused resumes add ERRORs
    assert first_end["event"] == ev.CANCELLED
    first_segment = first_end["time"] - events[starts[0]]["time"]
    last_segment = events[-1]["time"] - events[starts[-1]]["time"]
    assert first_segment + last_segment - 0.5 <= card.wall_s < events[-1]["time"] - events[0]["time"] - 1.0

    model, card_text = (run / "model.keras").read_bytes(), (run / "model.json").read_text()
    with pytest.raises(RunStateError, match="is finished .* would replace them"):
        train(config, run)
    assert (run / "model.keras").read_bytes() == model and (run / "model.json").read_text() == card_text


# ---------------------------------------------------------------- item 9: core annotate with a broken model

@pytest.mark.parametrize("bias, message", [(np.nan, "predicts non-finite keypoints (NaN or infinity) on a test face"),
                                           (100.0, "puts keypoints outside the 96x96 face crop")])
def test_core_annotate_refuses_a_model_whose_keypoints_are_broken(tmp_path, photos, bias, message):
    from tests.conftest import REPO
    from trainer.architecture import build_model
    from trainer.export import save_model

    model = build_model((4, 4, 8, 8, 8))
    weights = model.get_weights()
    weights[-2], weights[-1] = np.zeros_like(weights[-2]), np.full_like(weights[-1], bias)
    model.set_weights(weights)
    save_model(model, tmp_path / "broken.keras")  # with its ONNX twin, which the app runs
    out = subprocess.run([sys.executable, "-m", "core", "annotate", str(photos / "james.jpg"), "--out",
                          str(tmp_path / "out"), "--model", str(tmp_path / "broken.keras")],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and f"error: broken.keras {message}" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "out").exists()  # nothing written: no empty keypoints.csv that looks like an answer
