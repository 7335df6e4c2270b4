"""Models in and out on the training page in real Chromium: download a run's and the shipped model's
archive and look inside; upload an archive as a new run; bad archives get a message, not a traceback."""
import json
import zipfile

import numpy as np
import pytest
from playwright.sync_api import expect

from core.paths import SHIPPED_MODEL
from tests.e2e import choose
from trainer.architecture import build_model
from trainer.export import load_keras_model, save_model

WIDTHS = (4, 8, 8, 16, 16)


def _no_exception(page):
    expect(page.get_by_test_id("stException")).to_have_count(0)


def _finished_run(runs, name, model=None):
    """A run folder as a finished training leaves it."""
    path = runs / name
    save_model(model or build_model(WIDTHS), path / "model.keras")
    card = {"model": "model.keras", "run": name, "architecture": {"widths": list(WIDTHS)},
            "config": {"widths": list(WIDTHS)}, "metrics": {"test_rmse_px": 4.25}}
    (path / "model.json").write_text(json.dumps(card))
    (path / "config.json").write_text(json.dumps({"widths": list(WIDTHS)}))
    (path / "state.json").write_text(json.dumps({"finished": True}))
    return path


def _open_training(streamlit_app, page, first_download: str | None):
    server = streamlit_app()
    page.goto(server.url + "/training")
    expect(page.get_by_role("heading", name="Models in and out")).to_be_visible(timeout=60_000)
    if first_download:  # the page's first run is over once it has packed the first download
        expect(page.get_by_text(f"{first_download}.zip, ")).to_be_visible(timeout=60_000)
    _no_exception(page)
    return server


def _download(page, tmp_path, name):
    expect(page.get_by_text(f"{name}, ")).to_be_visible(timeout=60_000)  # the page has packed this archive
    with page.expect_download(timeout=60_000) as download:
        page.get_by_role("button", name="Download model archive").click()
    target = tmp_path / name
    download.value.save_as(target)
    _no_exception(page)
    return zipfile.ZipFile(target)


def test_download_a_run_and_the_shipped_model(streamlit_app, page, tmp_path):
    runs = tmp_path / "runs"
    run = _finished_run(runs, "trained")
    _open_training(streamlit_app, page, "shipped" if SHIPPED_MODEL.is_file() else "trained")
    choose(page, "Model to download", "trained")  # once, no retries: a refresh leaves an open dropdown open
    _no_exception(page)
    with _download(page, tmp_path, "trained.zip") as zf:
        assert sorted(zf.namelist()) == ["model.json", "model.keras", "model.onnx"]
        card = json.loads(zf.read("model.json"))
        assert card["run"] == "trained" and card["metrics"]["test_rmse_px"] == 4.25
        assert zf.read("model.keras") == (run / "model.keras").read_bytes()
    if not SHIPPED_MODEL.is_file():
        pytest.skip("no shipped model to download")
    choose(page, "Model to download", "the shipped model")
    with _download(page, tmp_path, "shipped.zip") as zf:
        card = json.loads(zf.read("model.json"))
        locator = (card["inference"].get("recentre") or {}).get("locator")  # the locator only when it re-centres
        located = [locator, locator.replace(".keras", ".onnx")] if locator else []
        assert sorted(zf.namelist()) == sorted(["model.json", "model.keras", "model.onnx", *located])
        assert card["model"] == "model.keras" and card["run"] == json.loads(SHIPPED_MODEL.with_suffix(".json").read_text())["run"]
    page.screenshot(path=str(tmp_path / "download.png"), full_page=True)


def _upload(page, archive, run_name):
    uploader = page.get_by_test_id("stFileUploader").filter(has_text="Model archive")
    uploader.locator("input[type=file]").set_input_files(str(archive))
    expect(uploader.get_by_text(archive.name)).to_be_visible(timeout=30_000)
    page.get_by_role("textbox", name="Name of the new run").fill(run_name)
    page.get_by_role("button", name="Import model").click()


def test_upload_an_archive_as_a_new_run_and_refuse_bad_ones(streamlit_app, page, tmp_path):
    runs = tmp_path / "runs"
    source = _finished_run(tmp_path / "elsewhere", "made-elsewhere")
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        for name in ("model.keras", "model.onnx", "model.json"):
            zf.write(source / name, name)
    broken = build_model(WIDTHS)
    kernel, _ = broken.get_layer("keypoints").get_weights()
    broken.get_layer("keypoints").set_weights([kernel, np.full(30, np.nan, np.float32)])
    nan_run = _finished_run(tmp_path / "elsewhere", "nan-run", broken)
    bad = tmp_path / "nan.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        for name in ("model.keras", "model.json"):
            zf.write(nan_run / name, name)
    not_zip = tmp_path / "photo.zip"
    not_zip.write_bytes(b"\x89PNG not an archive at all")

    runs.mkdir(parents=True)
    _open_training(streamlit_app, page, "shipped" if SHIPPED_MODEL.is_file() else None)
    _upload(page, good, "uploaded")
    expect(page.get_by_text("Imported as run 'uploaded'")).to_be_visible(timeout=120_000)
    _no_exception(page)
    # listed among the finished runs (newest first), with its card; not active
    expect(page.get_by_role("button", name="Use this model (uploaded)")).to_be_visible()
    expect(page.get_by_text("Test RMSE (96 px crop)")).to_be_visible()
    model = load_keras_model(runs / "uploaded" / "model.keras")
    assert [w.shape for w in model.get_weights()] == [w.shape for w in load_keras_model(source / "model.keras").get_weights()]
    assert not (runs / "active_model.txt").exists()

    _upload(page, bad, "nan-model")
    expect(page.get_by_text("predicts non-finite keypoints")).to_be_visible(timeout=60_000)
    _no_exception(page)
    _upload(page, not_zip, "photo")
    expect(page.get_by_text("not a zip archive")).to_be_visible(timeout=60_000)
    _no_exception(page)
    _upload(page, good, "uploaded")
    expect(page.get_by_text("A run named 'uploaded' already exists")).to_be_visible(timeout=60_000)
    _no_exception(page)
    assert sorted(p.name for p in runs.iterdir()) == ["uploaded"]
    page.screenshot(path=str(tmp_path / "upload.png"), full_page=True)
