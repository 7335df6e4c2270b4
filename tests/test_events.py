"""trainer.events: one typed event stream, three subscribers (CLI progress bar, JSONL log, the page's reader)."""
import io
import json

import pytest

from trainer import events as ev


def _stream(bus: ev.EventBus) -> None:
    """A two-epoch, one-stage run as the trainer emits it."""
    bus.emit(ev.RunStart(run_name="r1", train_rows=40, val_rows=8, stages=1, replicas_in_sync=2,
                         workers=["a:1", "b:2"], worker_index=1))
    bus.emit(ev.StageStart(stage=0, stages=1, name="lr 1e-3", epochs=2))
    for epoch in range(2):
        for batch in range(1, 21):
            bus.emit(ev.BatchProgress(stage=0, epoch=epoch, batch=batch, batches=20))
        bus.emit(ev.EpochEnd(stage=0, epoch=epoch, steps=20, loss=0.5 / (epoch + 1), val_loss=0.25, val_rmse_px=3.456))
    bus.emit(ev.PseudoLabels(filled_values=12, rows=3))
    bus.emit(ev.RunEnd(wall_s=61.7, metrics={"test_rmse_px": 2.345}, model_path="runs/r1/model.keras"))


def test_every_subscriber_gets_every_event_in_order_with_its_name_and_time():
    seen_a, seen_b = [], []
    bus = ev.EventBus([seen_a.append])
    bus.subscribe(lambda e: seen_b.append(e.NAME))
    event = bus.emit(ev.StageStart(stage=0, stages=1, name="x", epochs=1))
    assert seen_a == [event] and seen_b == [ev.STAGE_START]
    assert event.to_dict()["event"] == ev.STAGE_START and event.time > 1.6e9 and event.epochs == 1
    with pytest.raises(TypeError, match="not a training event"):
        bus.emit({"event": "epoch_ended"})  # a typo is an error, not an event no one listens to
    assert len(seen_a) == 1


def test_an_event_round_trips_through_its_log_line_and_old_logs_read_with_defaults(tmp_path):
    event = ev.EpochEnd(stage=2, epoch=3, epochs=5, loss=0.1, val_loss=0.2, rmse_px=1.5, val_rmse_px=2.5, lr=1e-4,
                        batch_size=64, steps=10, epoch_s=1.25, metrics={"val_auc": 0.99})
    assert ev.parse(json.loads(json.dumps(event.to_dict()))) == event
    old = ev.parse({"event": "epoch_end", "time": 5.0, "stage": 1, "epoch": 0, "loss": 0.3, "val_loss": 0.4,
                    "val_rmse_px": 3.0, "from_the_future": 1})  # no steps, epoch_s or metrics: an older run
    assert isinstance(old, ev.EpochEnd) and (old.stage, old.steps, old.metrics) == (1, 0, {})
    assert old.extra == {"from_the_future": 1} and old.to_dict()["from_the_future"] == 1  # kept, never lost
    assert ev.parse({"event": "no_such_event"}) is None and ev.parse({"stage": 1}) is None
    path = tmp_path / "events.jsonl"
    path.write_text('{"event": "run_start", "stage_names": ["a", "b"]}\n{"event": "unknown"}\n{"event": "error", "mess')
    assert ev.load_events(path) == [ev.RunStart(stage_names=["a", "b"])]


def test_jsonl_log_keeps_every_event_but_thins_batches(tmp_path):
    path = tmp_path / "nested" / "events.jsonl"  # its folder is made on first use
    bus = ev.EventBus([ev.JsonlLog(path, batch_every=10)])
    _stream(bus)
    events = ev.read_events(path)
    kinds = [e["event"] for e in events]
    assert kinds.count(ev.BATCH_PROGRESS) == 4  # batches 10 and 20 of each epoch, of 40
    assert [e["batch"] for e in events if e["event"] == ev.BATCH_PROGRESS] == [10, 20, 10, 20]
    assert kinds.count(ev.EPOCH_END) == 2 and kinds[0] == ev.RUN_START and kinds[-1] == ev.RUN_END
    assert events[-1]["metrics"] == {"test_rmse_px": 2.345}
    lines = path.read_text().splitlines()
    assert len(lines) == len(events) and all(json.loads(line)["time"] for line in lines)


def test_a_torn_last_line_or_a_missing_log_reads_as_the_complete_events(tmp_path):
    path = tmp_path / "events.jsonl"
    assert ev.read_events(path) == []  # a run that has not started yet
    ev.JsonlLog(path)(ev.StageEnd(stage=0, name="main"))
    with open(path, "a") as f:
        f.write('{"event": "epoch_end", "epo')  # the trainer was killed mid-write
    assert ev.read_events(path) == [{"event": ev.STAGE_END, "time": 0.0, "stage": 0, "name": "main"}]


def test_progress_bar_prints_one_line_per_epoch_and_the_run_summary():
    out = io.StringIO()
    _stream(ev.EventBus([ev.ProgressBar(stream=out, width=10)]))
    text = out.getvalue()
    lines = text.split("\n")
    assert lines[0] == "run r1 (worker 1 of 2): 40 train / 8 val rows, 1 stages, 2 replicas in sync"
    # the bar redraws in place (carriage returns); a finished epoch ends its line with the losses
    assert "\rstage 1/1 lr 1e-3 epoch 1/2 [#####     ]" in text  # batch 10 of 20
    assert "\rstage 1/1 lr 1e-3 epoch 2/2 [##########]" in text
    epoch_lines = [line.rsplit("\r", 1)[-1].rstrip() for line in lines if "loss" in line]
    assert epoch_lines == ["stage 1/1 lr 1e-3 epoch 1/2 (20 steps) loss 0.5000 val 0.2500 rmse 3.46px",
                           "stage 1/1 lr 1e-3 epoch 2/2 (20 steps) loss 0.2500 val 0.2500 rmse 3.46px"]
    assert "pseudo-labels: filled 12 values in 3 rows\n" in text
    assert text.endswith("done in 62s: test rmse 2.35px -> runs/r1/model.keras\n")


@pytest.mark.parametrize("kind", [ev.ERROR, ev.CANCELLED])
def test_progress_bar_shows_errors_and_cancels_on_their_own_line(kind):
    out = io.StringIO()
    bar = ev.ProgressBar(stream=out)
    bar(ev.RunStart(run_name="solo", train_rows=1, val_rows=0, stages=1))
    bar(ev.BY_NAME[kind](message="stopped by the page"))
    assert out.getvalue() == ("run solo: 1 train / 0 val rows, 1 stages, 1 replicas in sync\n"
                              f"\n{kind}: stopped by the page\n")
