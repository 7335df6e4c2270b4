"""Training page in real Chromium, used like a person: start a tiny run, watch it finish, use its model
and read what the page then says, fine-tune it, start a long run and cancel it. settle() after every
step fails on any Streamlit exception."""
import json
import os
import re
import shutil
import subprocess
import sys

from playwright.sync_api import expect

from core.model import onnx_path_for
from tests.conftest import REPO
from tests.e2e import open_dropdown, screenshot, settle
from tests.helpers import write_synthetic_csv
from trainer.export import load_keras_model

SCREENSHOT = "/tmp/fks-training.png"
ADAPT_SCREENSHOT = "/tmp/fks-training-adapt.png"
expect.set_options(timeout=30_000)  # a shared 2-core machine can take more than the 5 s default to rerun


def _setup(tmp_path, tiny_model_path):
    runs = tmp_path / "runs"
    (runs / "previous").mkdir(parents=True)
    previous = runs / "previous" / "model.keras"
    shutil.copy(tiny_model_path, previous)
    shutil.copy(onnx_path_for(tiny_model_path), onnx_path_for(previous))  # its twin: the app never exports one
    (runs / "active_model.txt").write_text(str(previous))
    data = write_synthetic_csv(tmp_path / "faces.csv", n=40, incomplete_every=5, people=10)
    return runs, previous, data


def _fill(page, label, text):
    page.get_by_label(label, exact=True).fill(text)
    page.get_by_label(label, exact=True).press("Enter")
    settle(page)


def _start(page, run_name):
    _fill(page, "Run name", run_name)
    page.get_by_role("button", name="Start training").click()
    settle(page)
    expect(page.get_by_text(f"Started run '{run_name}'")).to_be_visible()



def test_start_watch_activate_fine_tune_and_cancel(streamlit_app, page, tmp_path, tiny_model_path):
    runs, previous, data = _setup(tmp_path, tiny_model_path)
    cli = subprocess.run([sys.executable, "-m", "trainer", "train", "--preset", "quick", "--data", str(data),
                          "--run", "cli-run", "--test-size", "8", "--quiet"], cwd=REPO, capture_output=True,
                         text=True, timeout=300, env={**os.environ, "FKS_RUNS_DIR": str(runs)})
    assert cli.returncode == 0, cli.stderr[-2000:]
    server = streamlit_app(FKS_MODEL="", FKS_DATA_DIR=str(tmp_path / "data"))
    page.goto(server.url + "/training")
    expect(page.get_by_role("heading", name="Training", exact=True)).to_be_visible()
    settle(page)
    expect(page.get_by_text("Active model: run previous")).to_be_visible()
    page.get_by_role("radiogroup", name="Data source").get_by_text("Upload", exact=True).click()
    settle(page)
    dataset_uploader = page.get_by_test_id("stFileUploader").filter(has_text="Kaggle-format training file")
    dataset_uploader.locator("input[type=file]").set_input_files(str(data))  # not the model-archive uploader
    settle(page)
    page.get_by_text("Quick check (seconds)", exact=True).click()
    settle(page)
    # a small file: a tenth, not the recipe's 500 rows that would leave nothing to train on
    expect(page.get_by_label("Held-out test rows (or fraction < 1)", exact=True)).to_have_value("0.1")
    _fill(page, "Held-out test rows (or fraction < 1)", "8")
    for label, choice in (("Model head", "Heatmaps + soft-argmax"), ("Loss", "Wing")):
        page.get_by_label(label, exact=True).click()
        page.get_by_role("option", name=choice, exact=True).click()
        settle(page)
    page.get_by_label("Compute precision", exact=True).click()
    page.get_by_role("option", name="bfloat16", exact=True).click()
    settle(page)
    _start(page, "page-run")
    expect(page.get_by_text("Run 'page-run': finished")).to_be_visible(timeout=180_000)
    settle(page)
    # .first: while the live fragment re-renders, the old and the new chart can both be on the page
    expect(page.get_by_text("Loss per epoch").first).to_be_visible()
    expect(page.get_by_text("stage 3/3", exact=False).first).to_be_visible()  # main, pseudo, final
    # the pseudo-label stage says how many rows it labelled and with which model; the precision says why
    expect(page.get_by_text("incomplete rows labelled", exact=False).first).to_be_visible()
    chosen = "Compute precision: bfloat16: chosen in the configuration"
    expect(page.get_by_text(chosen, exact=False).first).to_be_visible()
    # both runs, page and CLI, are in the registry and made the same kinds of files
    cli_files = {p.name for p in (runs / "cli-run").iterdir()} - {"log.txt", "job.json"}
    page_files = {p.name for p in (runs / "page-run").iterdir()} - {"log.txt", "job.json"}
    assert cli_files == page_files and "model.keras" in page_files and "model.json" in page_files
    expect(page.get_by_text("None", exact=True)).to_have_count(0)

    page.get_by_role("button", name="Use this model (page-run)").click()
    settle(page)
    # activation checks the model through its ONNX twin (core.model.validate_model)
    expect(page.get_by_text("'page-run' is now the active model")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Active model: run page-run")).to_be_visible()  # at once, not after a reload
    expect(page.get_by_role("button", name="Use this model (page-run)")).to_be_disabled()
    active = (runs / "active_model.txt").read_text().strip()
    assert active.endswith("page-run/model.keras") and active != str(previous)
    load_keras_model(active)
    from core.registry import active_run
    from pages.ui import form
    from trainer import runfolders

    marked = form.registry_table(runfolders.list_runs(runs), active_run(runs, active))  # what the page's table shows
    assert list(marked.loc[marked["active"] != "", "run"]) == ["page-run"]
    screenshot(page, SCREENSHOT)

    # the default preset adapts the model just made active: its widths and head, fine-tuning always on
    page.get_by_text("Adapt the active model (default)", exact=True).click()
    settle(page)
    expect(page.get_by_label("Model widths", exact=True)).to_have_value("8,16,32,64,128")  # page-run's, not 32..512
    expect(page.get_by_label("Start from the active model's weights (fine-tune)", exact=True)).to_be_checked()
    expect(page.get_by_label("Start from the active model's weights (fine-tune)", exact=True)).to_be_disabled()
    screenshot(page, ADAPT_SCREENSHOT)
    _fill(page, "Held-out test rows (or fraction < 1)", "8")  # page-run's held-out people
    _start(page, "tuned-run")
    expect(page.get_by_text("Run 'tuned-run': finished")).to_be_visible(timeout=180_000)
    settle(page)
    card = json.loads((runs / "tuned-run" / "model.json").read_text())
    assert card["config"]["init_from"] == active and card["parent"]["run"] == "page-run"
    page_config = json.loads((runs / "page-run" / "config.json").read_text())
    # the widgets' choices reached the page's run; the adapted run took its parent's head
    assert (page_config["head"], page_config["loss"], page_config["mixed_precision"]) == ("softargmax", "wing", True)
    assert (card["config"]["head"], card["config"]["widths"]) == ("softargmax", [8, 16, 32, 64, 128])

    # a long run, cancelled: its checkpoint stays, the active model does not change
    page.get_by_text("Full recipe", exact=True).click()
    settle(page)
    _fill(page, "Held-out test rows (or fraction < 1)", "8")
    _start(page, "long-run")
    expect(page.get_by_text("Epochs done")).to_be_visible(timeout=120_000)
    # While it trains, its live view refreshes every 2 s: a dropdown a person opens stays open through a refresh
    shown = page.get_by_role("button", name=re.compile(r"^Use this model \(")).inner_text()
    other = next(run for run in ("cli-run", "page-run") if f"({run})" not in shown)
    epochs = page.get_by_test_id("stMetric").filter(has_text="Epochs done")
    before = epochs.inner_text()
    open_dropdown(page, "Run")
    # a refresh is seen by its figures (a script run's busy mark can come and go between two polls)
    expect(epochs).not_to_have_text(before, timeout=60_000)
    expect(page.get_by_role("listbox")).to_be_visible()
    page.get_by_role("option", name=other, exact=True).click()
    settle(page)
    expect(page.get_by_role("button", name=f"Use this model ({other})")).to_be_visible()
    expect(page.get_by_text("Run 'long-run': running")).to_be_visible()  # still training
    page.get_by_role("button", name="Cancel run").click()
    settle(page)
    cancelling = page.get_by_text("Cancelling: the run stops after the current batch")
    expect(cancelling).to_be_visible()  # said at once, and until the run has stopped
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    expect(page.get_by_text("Run 'long-run': cancelled")).to_be_visible(timeout=60_000)
    expect(cancelling).to_have_count(0)
    settle(page)
    assert (runs / "long-run" / "checkpoint.keras").is_file()
    assert not (runs / "long-run" / "model.keras").exists()
    assert (runs / "active_model.txt").read_text().strip() == active
    expect(page.get_by_text("Active model: run page-run")).to_be_visible()
    page.get_by_role("button", name="Use the shipped model").click()
    settle(page)
    expect(page.get_by_text("Active model: the shipped model")).to_be_visible()
