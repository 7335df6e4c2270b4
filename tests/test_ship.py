"""Shipping a run (and a locator run) as the app's model: files, card, and no stale locator left behind."""
import json

import numpy as np
import pytest

from core.pipeline import FacePipeline
from tests.helpers import write_synthetic_csv
from trainer.recipe import RecipeConfig, train
from trainer.ship import LOCATOR_NAME, ship

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
    for name in ("keypoints.keras", "keypoints.onnx", "keypoints.json", LOCATOR_NAME, "keypoints-locator.onnx"):
        assert (target.parent / name).is_file(), name
    assert card["locator"]["run"] == "locator" and card["locator"]["parent"]["run"] == "main"
    assert json.loads(target.with_suffix(".json").read_text())["shipped_from_run"] == "main"
    assert any("--locator locator" in step for step in card["reproduce"])

    with_locator = json.loads(target.with_suffix(".json").read_text())
    with_locator["inference"] = {"flip_average": True, "recentre": {"locator": LOCATOR_NAME, "passes": 2, "min_offset_px": 0.0}}
    target.with_suffix(".json").write_text(json.dumps(with_locator))
    pipeline = FacePipeline(target)
    assert pipeline.locator is not pipeline.predictor
    gray = np.random.default_rng(0).integers(0, 256, (200, 200), dtype=np.uint8)
    faces = pipeline.keypoints_for_boxes(gray, [(50, 50, 80, 80)])
    assert faces[0].keypoints_px.shape == (15, 2) and np.isfinite(faces[0].keypoints_px).all()

    copied = ship(str(target), target=two_runs / "elsewhere" / "keypoints.keras")  # a shipped file, no locator
    assert copied["inference"]["recentre"] is None and "locator" not in copied

    ship("main", target=target)
    assert not (target.parent / LOCATOR_NAME).exists() and not (target.parent / "keypoints-locator.onnx").exists()
    assert "locator" not in json.loads(target.with_suffix(".json").read_text())


def test_a_locator_tested_on_other_people_is_refused(two_runs):
    config = RecipeConfig(data=str(two_runs / "tiny.csv"), **{**TINY, "seed": 7})
    train(config, two_runs / "runs" / "other")
    with pytest.raises(ValueError, match="other people"):
        ship("main", target=two_runs / "models" / "keypoints.keras", locator_run="other")
