"""Shipping a run (and a locator run) as the app's model: files, card, and no stale locator left behind."""
import json

import numpy as np
import pytest

from core.card import DataSummary, Metrics, ModelCard, Recentring
from core.pipeline import FacePipeline
from tests.helpers import write_synthetic_csv
from trainer import ship as ship_module
from trainer.config import RecipeConfig
from trainer.recipe import train
from trainer.ship import LOCATOR_NAME, choose_option, inference_options, ship

TINY = dict(widths=(4, 8, 8, 16, 16), learning_rates=(1e-3,), batch_sizes=(16,), epochs_per_stage=1,
            pseudo_label=False, test_size=8, val_fraction=0.2)


@pytest.fixture
def two_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("FKS_RUNS_DIR", str(tmp_path / "runs"))
    csv = write_synthetic_csv(tmp_path / "tiny.csv", n=48, people=12)
    train(RecipeConfig(data=str(csv), **TINY), tmp_path / "runs" / "main")
    train(RecipeConfig(data=str(csv), init_from=str(tmp_path / "runs" / "main" / "model.keras"), **TINY),
          tmp_path / "runs" / "locator")
    return tmp_path


def test_ship_with_a_locator_then_without(two_runs):
    target = two_runs / "models" / "keypoints.keras"
    card = ship("main", target=target, locator_run="locator")
    for name in ("keypoints.keras", "keypoints.onnx", "keypoints.json", LOCATOR_NAME, "keypoints-locator.onnx",
                 "keypoints-locator.json"):
        assert (target.parent / name).is_file(), name
    assert card.locator.run == "locator" and card.locator.parent["run"] == "main"
    # the shipped locator keeps its own card, so the next model can be shipped with it as it is
    again = ship("main", target=two_runs / "next" / "keypoints.keras", locator_run=str(target.parent / LOCATOR_NAME))
    assert again.locator.run == "locator" and again.locator.command == card.locator.command
    assert json.loads(target.with_suffix(".json").read_text())["shipped_from_run"] == "main"
    assert any("--locator locator" in step for step in card.reproduce)
    # training is reproduced from the shipped card's own config (train --config takes a card)
    assert "python -m trainer train --config models/keypoints.json --run main" in card.reproduce

    with_locator = json.loads(target.with_suffix(".json").read_text())
    with_locator["inference"] = {"flip_average": True, "recentre": {"locator": LOCATOR_NAME, "passes": 2, "min_offset_px": 0.0}}
    target.with_suffix(".json").write_text(json.dumps(with_locator))
    pipeline = FacePipeline(target)
    assert pipeline.locator is not pipeline.predictor
    gray = np.random.default_rng(0).integers(0, 256, (200, 200), dtype=np.uint8)
    faces = pipeline.keypoints_for_boxes(gray, [(50, 50, 80, 80)])
    assert faces[0].keypoints_px.shape == (15, 2) and np.isfinite(faces[0].keypoints_px).all()

    copied_path = two_runs / "elsewhere" / "keypoints.keras"
    copied = ship(str(target), target=copied_path)  # a shipped file, no locator
    assert copied.inference.recentre is None and copied.locator is None
    assert "locator" not in json.loads(copied_path.with_suffix(".json").read_text())

    ship("main", target=target)
    assert not any((target.parent / f"keypoints-locator{suffix}").exists() for suffix in (".keras", ".onnx", ".json"))
    assert "locator" not in json.loads(target.with_suffix(".json").read_text())


def test_a_locator_tested_on_other_people_is_refused(two_runs):
    config = RecipeConfig(data=str(two_runs / "tiny.csv"), **{**TINY, "seed": 7})
    train(config, two_runs / "runs" / "other")
    with pytest.raises(ValueError, match="other people"):
        ship("main", target=two_runs / "models" / "keypoints.keras", locator_run="other")


def test_a_locator_that_validation_does_not_choose_is_measured_but_not_shipped(two_runs, monkeypatch):
    target = two_runs / "models" / "keypoints.keras"
    ship("main", target=target, locator_run="locator")  # an earlier ship, with re-centring

    def flip_wins(staged, card, frames, has_locator):
        assert has_locator  # the locator was measured...
        card.inference = type(card.inference)(flip_average=True, recentre=None, chosen_on="validation people")
        return dict(flip_average=True, recentre=False), {"nme": 0.05}

    monkeypatch.setattr(ship_module, "_measure_inference_options", flip_wins)
    monkeypatch.setattr(ship_module, "_measure_int8_twin", lambda *args: None)  # no frames to measure it on
    card = ship("main", frames="frames.zip", target=target, locator_run="locator")
    assert card.locator is None and "locator" not in json.loads(target.with_suffix(".json").read_text())
    assert not any((target.parent / f"keypoints-locator{suffix}").exists() for suffix in (".keras", ".onnx", ".json"))
    assert any("--locator locator" in step for step in card.reproduce)  # ...and the command that measured it says so
    assert FacePipeline(target).recentre is None


# -- choosing the inference options ------------------------------------------------------------------

def test_choose_option_takes_the_lowest_validation_nme_first_listed_on_ties_never_one_without_faces():
    assert choose_option([{"nme": 0.08}, {"nme": 0.07}, {"nme": 0.09}]) == 1
    assert choose_option([{"nme": 0.07}, {"nme": 0.07}]) == 0  # a tie keeps the simpler option
    assert choose_option([{"detected": 0}, {"nme": 0.5}]) == 1  # no face found: no NME, never chosen


def test_ship_chooses_on_validation_people_and_reports_test_people(monkeypatch, tmp_path):
    """The options' NME differs on validation and test people: the card must follow validation only."""
    card = ModelCard(data=DataSummary(val_people=["v1", "v2"], test_people=["t1"]), train_offset_p99_px=8.0,
                     mean_shape_crop=[[48.0, 48.0]] * 15, metrics=Metrics(test_rmse_px=3.0))
    options = inference_options(8.0, has_locator=True)
    val_nme = [0.09, 0.08, 0.07, 0.05, 0.06, 0.075]  # re-centring at 1.5 x 8 px (index 3) is best on validation
    test_nme = [0.04, 0.05, 0.06, 0.10, 0.01, 0.02]  # ...while the test people would favour other options
    calls = []

    def evaluate(model, frames, people, mean_shape_crop=None, **option):
        i = options.index(option)
        calls.append((tuple(people), i))
        assert mean_shape_crop == card.mean_shape_crop  # passed in: no card on disk is needed
        nme = val_nme[i] if people == ["v1", "v2"] else test_nme[i]
        return {"nme": nme, "flip_average": option["flip_average"]}

    monkeypatch.setattr(ship_module, "evaluate_frames", evaluate)
    ship_module._measure_inference_options(tmp_path / "model.keras", card, "frames.zip", has_locator=True)

    assert options[3]["recentre"].min_offset_px == 12.0
    assert card.inference.chosen_on == "validation people" and card.inference.flip_average is True
    assert card.inference.recentre == Recentring(LOCATOR_NAME, 3, 12.0)
    assert sorted(i for people, i in calls if people == ("t1",)) == [0, 1, 3]  # test people: chosen + the two plain
    assert [i for people, i in calls if people == ("v1", "v2")] == list(range(len(options)))
    assert card.metrics.to_dict() == {"test_rmse_px": 3.0, "end_to_end": {"nme": 0.10, "flip_average": True,
                                                                         "recentre": None}}
    tested = [e for e in card.evaluations if e.people == "test"]
    assert [e.nme for e in tested] == [0.04, 0.05, 0.10]
    assert len([e for e in card.evaluations if e.people == "validation"]) == len(options)


def test_the_ship_command_writes_where_it_is_told_and_refuses_clearly(two_runs):
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    def run(*args):
        return subprocess.run([sys.executable, "-m", "trainer", "ship", *args], cwd=REPO, capture_output=True, text=True,
                              timeout=300, env={**os.environ, "FKS_RUNS_DIR": str(two_runs / "runs")})

    target = two_runs / "shipped" / "keypoints.keras"
    out = run("main", "--locator", "locator", "--to", str(target))
    assert out.returncode == 0, out.stderr[-2000:]
    assert set(json.loads(out.stdout)) == {"inference", "end_to_end"}
    for name in ("keypoints.keras", "keypoints.onnx", "keypoints.json", LOCATOR_NAME):
        assert (target.parent / name).is_file(), name
    assert json.loads(target.with_suffix(".json").read_text())["shipped_from_run"] == "main"
    before = target.read_bytes()
    refused = run("no-such-run", "--to", str(target))
    assert refused.returncode == 2 and refused.stderr.startswith("error:") and "Traceback" not in refused.stderr
    assert target.read_bytes() == before  # nothing shipped is touched by a refusal


@pytest.mark.parametrize("int8_nme, live", [(0.0502, True), (0.0600, False)])
def test_the_int8_twin_is_shipped_and_runs_live_only_if_it_keeps_the_validation_nme(two_runs, monkeypatch, int8_nme, live):
    def evaluate(model, frames, people, mean_shape_crop=None, flip_average=None, recentre=None, int8=False):
        nme = int8_nme if int8 else (0.05 if flip_average and not recentre else 0.07)
        return {"nme": nme, "flip_average": flip_average, "recentre": None, "frames_above_0.10": 0.01}

    monkeypatch.setattr(ship_module, "evaluate_frames", evaluate)
    target = two_runs / "models" / "keypoints.keras"
    card = ship("main", frames="frames.zip", target=target)
    assert card.inference.flip_average is True
    assert card.inference.int8.to_dict() == {"nme": int8_nme, "float_nme": 0.05, "frames_above_0.10": 0.01,
                                             "live": live, "measured_on": "validation people"}
    assert target.with_suffix(".int8.onnx").is_file()
    pipeline = FacePipeline(target)
    assert (pipeline.live_predictor is not pipeline.predictor) == live
    crops = np.random.default_rng(0).integers(0, 256, (3, 96, 96), dtype=np.uint8)
    assert np.isfinite(pipeline.live_predictor.predict_crops(crops)).all()

    copied = ship(str(target), target=two_runs / "copy" / "keypoints.keras")  # a shipped file, not measured again
    assert copied.inference.int8 is None and not (two_runs / "copy" / "keypoints.int8.onnx").exists()
    ship("main", target=target)  # no frames: nothing measured, so no twin is left beside other weights
    assert not target.with_suffix(".int8.onnx").exists()
    plain = FacePipeline(target)
    assert plain.live_predictor is plain.predictor
    assert ModelCard.read(target).inference.int8 is None
