"""`python -m trainer` as a person runs it: progress, files of a run, clear errors."""
import json
import os
import subprocess
import sys

from tests.conftest import REPO
from tests.helpers import write_synthetic_csv


def _run(args, tmp_path, **env):
    return subprocess.run([sys.executable, "-m", "trainer", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "FKS_RUNS_DIR": str(tmp_path / "runs"), **env})


def test_train_quick_preset_writes_a_complete_run_and_activates(tmp_path):
    data = write_synthetic_csv(tmp_path / "d.csv", n=40, incomplete_every=5, people=10)
    out = _run(["train", "--preset", "quick", "--data", str(data), "--run", "cli-run", "--test-size", "8"], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "epoch 1/1" in out.stderr and "test rmse" in out.stderr
    run = tmp_path / "runs" / "cli-run"
    for name in ("config.json", "events.jsonl", "state.json", "checkpoint.keras", "model.keras", "model.onnx", "model.json"):
        assert (run / name).is_file(), name
    assert "test_rmse_px" in json.loads(out.stdout)
    act = _run(["activate", "cli-run"], tmp_path)
    assert act.returncode == 0, act.stderr
    assert (tmp_path / "runs" / "active_model.txt").read_text().endswith("cli-run/model.keras")


def test_bad_inputs_give_one_line_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    out = _run(["train", "--data", str(bad), "--run", "x"], tmp_path)
    assert out.returncode == 2 and out.stderr.strip().splitlines()[-1].startswith("error: Missing column")
    assert "Traceback" not in out.stderr
    out = _run(["train", "--data", str(bad), "--run", "../escape"], tmp_path)
    assert out.returncode == 2 and "not allowed" in out.stderr and "Traceback" not in out.stderr
    out = _run(["activate", "no-such-run"], tmp_path)
    assert out.returncode == 2 and "No model file" in out.stderr and "Traceback" not in out.stderr
