"""What the training page's live view reads of a run folder: each file once per refresh (trainer.runfolders.read_run),
and the same answers as the one-question functions."""
import builtins
import collections
import json
import pathlib

from core.card import ModelCard
from trainer import runfolders
from trainer.config import RecipeConfig


def _pseudo_run(root: pathlib.Path) -> pathlib.Path:
    """A finished run folder with a pseudo-label stage and a recorded precision, written as trainer.runs does."""
    path = root / "pseudo-run"
    path.mkdir(parents=True)
    config = RecipeConfig().to_dict() | {"precision": {"bfloat16": False, "reason": "float32: chosen in the configuration"}}
    (path / "config.json").write_text(json.dumps(config))
    events = [{"event": "run_start", "stage_names": ["main", "pseudo", "final"], "incomplete_rows": 7},
              *({"event": "epoch_end", "stage": 0, "epoch": e, "loss": 0.5, "val_loss": 0.6, "rmse_px": 9.0,
                 "val_rmse_px": 9.5, "lr": 1e-3, "batch_size": 32} for e in range(2)),
              {"event": "pseudo_labels", "rows": 7, "filled_values": 77, "complete_rows": 20, "model": "the model"}]
    (path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    ModelCard.from_dict({"run": "pseudo-run", "metrics": {"test_rmse_px": 4.0}}).write(path / "model.keras")
    return path


def test_read_run_reads_each_file_once_and_answers_as_the_single_readers(tmp_path, monkeypatch):
    path = _pseudo_run(tmp_path / "runs")
    opened: collections.Counter[str] = collections.Counter()
    real_open, real_read_text = builtins.open, pathlib.Path.read_text

    def counting_open(file, *args, **kwargs):
        opened[pathlib.Path(file).name] += 1
        return real_open(file, *args, **kwargs)

    def counting_read_text(self, *args, **kwargs):
        opened[self.name] += 1
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    monkeypatch.setattr(pathlib.Path, "read_text", counting_read_text)
    view = runfolders.read_run(path)
    monkeypatch.undo()
    assert {name: opened[name] for name in ("config.json", "events.jsonl", "model.json")} == \
        {"config.json": 1, "events.jsonl": 1, "model.json": 1}, opened

    assert view.status == runfolders.status(path) == "finished"
    assert view.pseudo_labels == runfolders.pseudo_labels(path)
    assert view.pseudo_labels.startswith("Pseudo-labelling: 7 incomplete rows labelled (77 values filled)")
    assert view.precision == runfolders.precision(path) == "float32: chosen in the configuration"
    assert view.curves.equals(runfolders.curves(path)) and len(view.curves) == 2


def test_read_run_reports_a_broken_config_as_run_problem_does(tmp_path):
    path = _pseudo_run(tmp_path / "runs")
    (path / "config.json").write_text("{not json")
    view = runfolders.read_run(path)
    assert view.problem == runfolders.run_problem(path) and view.problem.startswith("config.json is not a valid")
    assert view.status == "broken" and view.config == {} and view.precision is None
    (path / "config.json").unlink()
    assert runfolders.read_run(path).problem == runfolders.run_problem(path) == "config.json is missing or unreadable"
