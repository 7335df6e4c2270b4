"""The typed model card reads every card the project has written and writes it back unchanged."""
import json

import pytest

from core.card import (
    Architecture,
    DataSummary,
    EndToEnd,
    Inference,
    Int8Verdict,
    LocatorInfo,
    Metrics,
    ModelCard,
    Recentring,
    read_card,
)
from core.paths import SHIPPED_MODEL


@pytest.mark.shipped_model
def test_the_shipped_card_round_trips_without_losing_a_key():
    raw = json.loads(SHIPPED_MODEL.with_suffix(".json").read_text())
    card = ModelCard.from_dict(raw)
    assert card.to_dict() == raw
    assert card.inference.flip_average is True and card.inference.chosen_on == "validation people"
    assert card.data.import_report["frames"] == 3462  # stored under the key "import"
    assert len(card.data.test_people) == 34 and len(card.mean_shape_crop) == 15
    assert card.end_to_end.nme == raw["metrics"]["end_to_end"]["nme"]
    assert card.inference.int8.live is True and card.inference.int8.frames_above_010 == raw["inference"]["int8"][
        "frames_above_0.10"]
    assert [e.people for e in card.evaluations][:1] == ["validation"] and card.evaluations[0].recentre is None
    assert card.head == "softargmax"  # from the config: this card predates the architecture's head


def test_an_old_or_partial_card_gets_defaults_and_keeps_unknown_keys(tmp_path):
    card = ModelCard.from_dict({"run": "r1", "data": {"rows": 5, "future": 1}, "someday": [1]})
    assert card.inference == Inference() and not card.inference.flip_average and card.mean_shape_crop is None
    assert card.end_to_end == EndToEnd() and card.metrics == Metrics() and card.head == "gap"
    assert card.data == DataSummary(rows=5, extra={"future": 1})
    path = card.write(tmp_path / "model.keras")
    assert path.name == "model.json"
    again = json.loads(path.read_text())
    assert again["someday"] == [1] and again["data"]["future"] == 1 and again["run"] == "r1"
    assert ModelCard.read(tmp_path / "model.keras") == card


def test_a_missing_or_broken_card_reads_as_empty(tmp_path):
    assert read_card(tmp_path / "none.keras") == ModelCard()
    (tmp_path / "broken.json").write_text("[1, 2")
    assert read_card(tmp_path / "broken.keras") == ModelCard()
    (tmp_path / "list.json").write_text("[1, 2]")
    assert read_card(tmp_path / "list.keras") == ModelCard()


@pytest.mark.shipped_model
def test_cards_describe_data_and_inference_in_words():
    card = ModelCard.read(SHIPPED_MODEL)
    assert card.data.describe().startswith("YouTube-faces video frames") and "34" not in card.data.describe()[:20]
    assert "2750 train, 314 validation, 346 test rows" in card.data.describe()
    assert card.inference.describe() == "flip-averaged"  # re-centring did not pay on the validation people
    recentring = Inference(flip_average=True, recentre=Recentring("keypoints-locator.keras", min_offset_px=13.3))
    assert recentring.describe() == ("flip-averaged, crops re-centred by keypoints-locator.keras when a face sits "
                                     "over 13.3 px off-centre")
    assert DataSummary().describe() == "unknown" and Inference().describe() == "single pass"
    assert DataSummary(rows=5, source="/srv/x/faces.csv").describe() == "5 rows of faces.csv"  # no server folders


def test_each_section_is_typed_and_round_trips_through_its_dict():
    raw = {"architecture": {"widths": [4, 8], "head": "softargmax"},
           "metrics": {"test_rmse_px": 2.5, "end_to_end": {"nme": 0.05, "frames_above_0.10": 0.02, "recentre": None},
                       "later": 1},
           "inference": {"flip_average": True, "recentre": {"locator": "l.keras", "passes": 2, "min_offset_px": 9.5},
                         "int8": {"nme": 0.0467, "float_nme": 0.0468, "frames_above_0.10": 0.02, "live": True,
                                  "measured_on": "validation people"}},
           "evaluations": [{"people": "test", "nme": 0.06, "flip_average": False, "recentre": None}],
           "locator": {"run": "loc", "file": "l.keras", "parent": {"run": "main"}, "new": 2}}
    card = ModelCard.from_dict(raw)
    assert card.architecture == Architecture(widths=[4, 8], head="softargmax") and card.head == "softargmax"
    assert card.metrics.end_to_end == EndToEnd(nme=0.05, frames_above_010=0.02) and card.metrics.extra == {"later": 1}
    assert card.inference.recentre == Recentring("l.keras", 2, 9.5)
    assert card.inference.int8 == Int8Verdict(nme=0.0467, float_nme=0.0468, frames_above_010=0.02, live=True,
                                              measured_on="validation people") and card.inference.int8_live
    assert card.evaluations[0].people == "test" and card.evaluations[0].nme == 0.06
    assert card.locator == LocatorInfo(run="loc", file="l.keras", parent={"run": "main"}, extra={"new": 2})
    assert card.to_dict() == raw


def test_a_section_of_the_wrong_shape_is_not_a_card():
    import pytest

    for broken in ({"inference": {"int8": [1]}}, {"evaluations": {"nme": 1}}, {"evaluations": [1]},
                   {"metrics": "fast"}):
        with pytest.raises(ValueError, match="not a model card"):
            ModelCard.from_dict(broken)
