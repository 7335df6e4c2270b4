"""Two training workers on 127.0.0.1 (tf.distribute.MultiWorkerMirroredStrategy through
`python -m trainer train --workers ... --worker-index I`): both take part, worker 0 alone writes the
run, a killed pair resumes where the chief's run folder says, and the run folder holds what a
single-machine run's does."""
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, _free_port
from tests.helpers import write_synthetic_csv
from trainer import events as ev

TINY = dict(widths=[4, 8, 8, 16, 16], learning_rates=[1e-3, 1e-4], batch_sizes=[16], epochs_per_stage=1,
            pseudo_label=False, test_size=8, val_fraction=0.2)
TIMEOUT_S = 150  # per launch; a hung worker is killed, never waited for


@pytest.fixture
def setup(tmp_path):
    data = write_synthetic_csv(tmp_path / "faces.csv", n=48, people=12)
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    return tmp_path / "runs", ["train", "--data", str(data), "--config", str(config)]


def _env(runs, **extra):
    return {**os.environ, "PYTHONPATH": str(REPO), "FKS_RUNS_DIR": str(runs), "CUDA_VISIBLE_DEVICES": "",
            "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def _start_pair(args, runs, tmp_path, tag):
    workers = f"127.0.0.1:{_free_port()},127.0.0.1:{_free_port()}"
    scratch = tmp_path / f"scratch-{tag}"
    scratch.mkdir()
    procs = []
    for index in (0, 1):
        log = open(tmp_path / f"worker{index}-{tag}.log", "w")
        procs.append(subprocess.Popen([sys.executable, "-m", "trainer", *args, "--run", "multi", "--workers", workers,
                                       "--worker-index", str(index)], cwd=REPO, env=_env(runs, TMPDIR=str(scratch)),
                                      stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
    return procs, scratch


def _kill(procs):
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)


def _wait(procs, until=lambda: False):
    """Until both exit (or `until()` holds); kill both on the deadline: a hang fails, never blocks."""
    deadline = time.time() + TIMEOUT_S
    while time.time() < deadline and not until() and any(p.poll() is None for p in procs):
        time.sleep(0.2)
    if any(p.poll() is None for p in procs) and not until():
        _kill(procs)
        pytest.fail(f"the workers did not finish within {TIMEOUT_S}s")


def _stage_done(runs, stage):
    try:
        return json.loads((runs / "multi" / "state.json").read_text())["stage"] >= stage
    except (OSError, ValueError, KeyError):
        return False


def test_two_workers_train_one_run_written_by_worker_0_and_resume_after_being_killed(setup, tmp_path):
    runs, args = setup
    single = subprocess.run([sys.executable, "-m", "trainer", *args, "--run", "single", "--quiet"], cwd=REPO,
                            env=_env(runs), capture_output=True, text=True, timeout=TIMEOUT_S)
    assert single.returncode == 0, single.stderr[-3000:]

    procs, _ = _start_pair(args, runs, tmp_path, "first")
    try:  # kill both once the chief has checkpointed the first stage: a crash of the whole cluster
        _wait(procs, until=lambda: _stage_done(runs, 1))
    finally:
        _kill(procs)
    assert not (runs / "multi" / "model.json").exists(), "the run finished before it could be interrupted"

    procs, scratch = _start_pair(args, runs, tmp_path, "resumed")
    try:
        _wait(procs)
    finally:
        _kill(procs)
    logs = [(tmp_path / f"worker{i}-resumed.log").read_text() for i in (0, 1)]
    assert [p.returncode for p in procs] == [0, 0], logs[0][-3000:] + logs[1][-3000:]

    # worker 0 alone wrote: one run folder besides the single-machine one; worker 1's scratch copy is gone
    assert sorted(p.name for p in runs.iterdir()) == ["multi", "single"]
    assert list(scratch.iterdir()) == []
    assert "worker 0 wrote the run" in logs[1]

    events = ev.read_events(runs / "multi" / "events.jsonl")
    starts = [e for e in events if e["event"] == ev.RUN_START]
    assert [s["replicas_in_sync"] for s in starts] == [2, 2] and starts[-1]["worker_index"] == 0
    assert starts[-1]["resumed_from"]["stage"] == 1
    epochs = [e for e in events if e["event"] == ev.EPOCH_END]
    steps = math.ceil(starts[0]["train_rows"] / TINY["batch_sizes"][0])
    assert [(e["stage"], e["epoch"], e["steps"]) for e in epochs] == [(0, 0, steps), (1, 0, steps)]  # none repeated
    # worker 1 took part: its own log shows its place in the cluster and the steps it ran
    assert "(worker 1 of 2)" in logs[1] and "2 replicas in sync" in logs[1]
    assert logs[1].count(f"epoch 1/1 ({steps} steps)") == 1  # the resumed stage only

    # the same run folder as one machine makes, the same config apart from the strategy
    files = lambda run: {p.name for p in (runs / run).iterdir()}  # noqa: E731
    assert files("multi") == files("single")
    config = {run: json.loads((runs / run / "config.json").read_text()) for run in ("multi", "single")}
    assert config["multi"].pop("strategy") == "multi_worker" and config["single"].pop("strategy") == "none"
    assert config["multi"] == config["single"]
    cards = {run: json.loads((runs / run / "model.json").read_text()) for run in ("multi", "single")}
    assert cards["multi"]["distribution"]["replicas_in_sync"] == 2 and len(cards["multi"]["distribution"]["workers"]) == 2
    assert cards["single"]["distribution"] == {"strategy": "none", "replicas_in_sync": 1, "workers": []}
    timing_and_workers = {"created", "wall_s", "command", "run", "distribution", "config", "metrics"}
    assert {k: v for k, v in cards["multi"].items() if k not in timing_and_workers} == \
        {k: v for k, v in cards["single"].items() if k not in timing_and_workers}


def test_worker_arguments_are_checked_before_training(setup, tmp_path):
    runs, args = setup
    for extra, message in ((["--workers", "127.0.0.1:1,127.0.0.1:2"], "go together"),
                           (["--workers", "127.0.0.1:1", "--worker-index", "0"], "two or more"),
                           (["--workers", "127.0.0.1:1,127.0.0.1:2", "--worker-index", "2"], "between 0 and 1")):
        out = subprocess.run([sys.executable, "-m", "trainer", *args, *extra], cwd=REPO, env=_env(runs),
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
