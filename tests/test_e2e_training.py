"""Training page in real Chromium: start a tiny run, watch it, activate it, fine-tune it; cancel another."""
import json
import os
import shutil
import subprocess
import sys

from playwright.sync_api import expect

from core.model import load_keras_model
from tests.conftest import REPO
from tests.helpers import write_synthetic_csv


def _setup(tmp_path, tiny_model_path):
    runs = tmp_path / "runs"
    (runs / "previous").mkdir(parents=True)
    previous = runs / "previous" / "model.keras"
    shutil.copy(tiny_model_path, previous)
    (runs / "active_model.txt").write_text(str(previous))
    data = write_synthetic_csv(tmp_path / "faces.csv", n=40, incomplete_every=5, people=10)
    return runs, previous, data


def _open(streamlit_app, page, tmp_path, data, preset, run_name):
    server = streamlit_app(FKS_MODEL="", FKS_DATA_DIR=str(tmp_path / "data"))
    page.goto(server.url + "/training")
    expect(page.get_by_role("heading", name="Training", exact=True)).to_be_visible()
    page.get_by_text("Upload", exact=True).click()
    dataset_uploader = page.get_by_test_id("stFileUploader").filter(has_text="Kaggle-format training file")
    dataset_uploader.locator("input[type=file]").set_input_files(str(data))  # not the model-archive uploader
    page.get_by_text(preset, exact=True).click()
    page.get_by_label("Held-out test rows (or fraction < 1)").fill("8")
    page.get_by_label("Held-out test rows (or fraction < 1)").press("Enter")
    page.get_by_label("Run name", exact=True).fill(run_name)
    page.get_by_label("Run name", exact=True).press("Enter")
    page.get_by_role("button", name="Start training").click()
    expect(page.get_by_text(f"Started run '{run_name}'")).to_be_visible()
    return server


def test_start_watch_finish_and_activate(streamlit_app, page, tmp_path, tiny_model_path):
    runs, previous, data = _setup(tmp_path, tiny_model_path)
    cli = subprocess.run([sys.executable, "-m", "trainer", "train", "--preset", "quick", "--data", str(data),
                          "--run", "cli-run", "--test-size", "8", "--quiet"], cwd=REPO, capture_output=True,
                         text=True, timeout=300, env={**os.environ, "FKS_RUNS_DIR": str(runs)})
    assert cli.returncode == 0, cli.stderr[-2000:]
    _open(streamlit_app, page, tmp_path, data, "Quick check (seconds)", "page-run")
    expect(page.get_by_text("Run 'page-run': finished")).to_be_visible(timeout=180_000)
    # .first: while the live fragment re-renders, the old and the new chart can both be on the page
    expect(page.get_by_text("Loss per epoch").first).to_be_visible()
    expect(page.get_by_text("stage 3/3", exact=False).first).to_be_visible()  # main, pseudo, final
    table = page.get_by_test_id("stDataFrame")
    expect(table).to_be_visible()
    # both runs, page and CLI, are in the registry and made the same kinds of files
    cli_files = {p.name for p in (runs / "cli-run").iterdir()} - {"log.txt", "job.json"}
    page_files = {p.name for p in (runs / "page-run").iterdir()} - {"log.txt", "job.json"}
    assert cli_files == page_files and "model.keras" in page_files and "model.json" in page_files
    page.get_by_role("button", name="Use this model (page-run)").click()
    # activation loads and checks the model with Keras: the page process's first TensorFlow import (~11 s on a busy 2-core machine)
    expect(page.get_by_text("'page-run' is now the active model")).to_be_visible(timeout=60_000)
    active = (runs / "active_model.txt").read_text().strip()
    assert active.endswith("page-run/model.keras") and active != str(previous)
    load_keras_model(active)

    # fine-tune the model just made active, from the page: same data, widths and held-out people
    page.get_by_text("Start from the active model's weights (fine-tune)").click()
    page.get_by_label("Run name", exact=True).fill("tuned-run")
    page.get_by_label("Run name", exact=True).press("Enter")
    page.get_by_role("button", name="Start training").click()
    expect(page.get_by_text("Started run 'tuned-run'")).to_be_visible()
    expect(page.get_by_text("Run 'tuned-run': finished")).to_be_visible(timeout=180_000)
    card = json.loads((runs / "tuned-run" / "model.json").read_text())
    assert card["config"]["init_from"] == active and card["parent"]["run"] == "page-run"


def test_cancel_keeps_the_previous_active_model(streamlit_app, page, tmp_path, tiny_model_path):
    runs, previous, data = _setup(tmp_path, tiny_model_path)
    _open(streamlit_app, page, tmp_path, data, "Full recipe", "long-run")
    expect(page.get_by_text("Epochs done")).to_be_visible(timeout=120_000)
    page.get_by_role("button", name="Cancel run").click()
    expect(page.get_by_text("Run 'long-run': cancelled")).to_be_visible(timeout=60_000)
    assert (runs / "long-run" / "checkpoint.keras").is_file()
    assert not (runs / "long-run" / "model.keras").exists()
    assert (runs / "active_model.txt").read_text().strip() == str(previous)
    load_keras_model(previous)
