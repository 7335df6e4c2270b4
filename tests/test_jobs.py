"""Background training jobs: one at a time, names kept inside the runs folder, cancel, status."""
import pytest

from core.registry import safe_run_dir
from tests.helpers import wait_until, write_synthetic_csv
from trainer import jobs, runfolders


@pytest.mark.parametrize("name", ["../x", "a/b", "", ".hidden", "x" * 80, "..", "/abs"])
def test_run_names_cannot_escape_the_runs_folder(name, tmp_path):
    with pytest.raises(ValueError):
        safe_run_dir(name, tmp_path)


def test_one_job_at_a_time_and_cancel(tmp_path):
    data = write_synthetic_csv(tmp_path / "d.csv", n=40, people=10)
    config = dict(data=str(data), widths=(8, 8, 8, 8, 8), epochs_per_stage=200, test_size=8, pseudo_label=False)
    root = tmp_path / "runs"
    jobs.start("first", config, root)
    assert runfolders.status(root / "first") == "running"
    with pytest.raises(jobs.BusyError, match="first"):
        jobs.start("second", config, root)
    log_tail = lambda: (root / "first" / "log.txt").read_text()[-2000:]  # noqa: E731
    wait_until(lambda: not runfolders.curves(root / "first").empty, 120, "the first epoch's losses", detail=log_tail)
    jobs.cancel("first", root)
    wait_until(lambda: runfolders.status(root / "first") != "running", 60, "the cancelled job to stop", detail=log_tail)
    assert runfolders.status(root / "first") == "cancelled"
    table = runfolders.list_runs(root)
    assert list(table["run"]) == ["first"] and table["status"][0] == "cancelled"
    p = runfolders.progress(root / "first")
    assert p.stages == 9 and 0 < p.fraction < 0.1
    jobs.start("second", config, root)  # free again
    second_pid = runfolders.job_of(root / "second")["pid"]
    jobs.cancel("second", root)  # at once: it may not have reached its first epoch, or even its SIGTERM handler
    wait_until(lambda: runfolders.status(root / "second") != "running", 60, "the second job to stop",
               detail=lambda: (root / "second" / "log.txt").read_text()[-2000:])
    # The process is gone, not left training its 200 epochs. It stops counting as the run's process once its
    # memory is released (an empty command line), a moment before it has finished exiting: wait for that too.
    wait_until(lambda: not runfolders.pid_alive(second_pid), 30, "the second job's process to exit")
    assert runfolders.status(root / "second") in ("cancelled", "stopped")  # resumable either way
    assert not (root / "second" / "model.keras").exists()
