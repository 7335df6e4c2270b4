"""The card types beyond the round trip of tests/test_card.py: the verifier's card, a card that is not one,
and the card a finished run gets (trainer.cards.run_card through trainer.runs.Run.finish)."""
import json
import sys

import numpy as np
import pytest

from core.card import ModelCard, VerifierCard, read_card
from core.paths import SHIPPED_VERIFIER
from core.schema import KEYPOINT_NAMES
from trainer.cards import command_line, run_card
from trainer.config import RecipeConfig
from trainer.recipe import make_split
from trainer.runs import Run
from trainer.synthetic import synthetic_faces


@pytest.mark.shipped_model
def test_the_shipped_verifier_card_round_trips_typed():
    raw = json.loads(SHIPPED_VERIFIER.with_suffix(".json").read_text())
    card = VerifierCard.from_dict(raw)
    assert card.to_dict() == raw
    assert 0 < card.threshold < 1 and card.split["test_people"] and card.metrics["val"]["recall"] >= 0.99


@pytest.mark.parametrize("section", ["data", "inference", "architecture"])
def test_a_section_that_is_not_an_object_is_not_a_card(section, tmp_path):
    with pytest.raises(ValueError, match=section):
        ModelCard.from_dict({section: 3})
    (tmp_path / "m.json").write_text(json.dumps({section: [1]}))
    assert read_card(tmp_path / "m.keras") == ModelCard()  # the model still runs, without its card
    assert ModelCard.from_dict({section: None}) == ModelCard()  # an empty section reads as its defaults


def test_a_finished_run_card_names_its_held_out_people_and_mean_face(tmp_path, monkeypatch):
    data = synthetic_faces(40, people=10)
    config = RecipeConfig(data="d.csv", widths=(8, 8, 8, 8, 8), test_size=8, val_fraction=0.2, pseudo_label=False)
    split = make_split(data, config)
    monkeypatch.setattr(sys, "argv", ["/repo/trainer/__main__.py", "train", "--run", "my run"])
    assert command_line() == "python -m trainer train --run 'my run'"  # quoted for a shell
    card = run_card("r", "model.keras", config, data, split, {"test_rmse_px": 2.5}, 12.34)
    assert card.command == "python -m trainer train --run 'my run'" and card.wall_s == 12.3
    assert card.architecture.input == [96, 96, 1] and card.architecture.widths == [8, 8, 8, 8, 8]
    assert card.data.split == "by person" and card.data.rows == 40
    assert sorted(card.data.test_people) == sorted(set(split.test.groups))
    assert not set(card.data.test_people) & set(card.data.val_people) & set(split.train.groups)
    np.testing.assert_allclose(card.mean_shape_crop, np.nanmean(split.train.keypoints, axis=0), atol=1e-3)
    assert card.keypoint_names == list(KEYPOINT_NAMES) and card.train_offset_p99_px > 0

    run = Run(tmp_path / "r")
    run.finish(card)
    assert ModelCard.read(run.model_path).to_dict() == json.loads(json.dumps(card.to_dict()))  # tuples: lists
    assert run.state()["finished"] is True
    monkeypatch.setattr(sys, "argv", ["/usr/bin/pytest"])
    assert command_line() is None  # not the trainer CLI: no command to record
