"""The typed model card reads every card the project has written and writes it back unchanged."""
import json

from core.card import DataSummary, Inference, ModelCard, read_card
from core.paths import SHIPPED_MODEL


def test_the_shipped_card_round_trips_without_losing_a_key():
    raw = json.loads(SHIPPED_MODEL.with_suffix(".json").read_text())
    card = ModelCard.from_dict(raw)
    assert card.to_dict() == raw
    assert card.inference.flip_average is True and card.inference.chosen_on == "validation people"
    assert card.data.import_report["frames"] == 3462  # stored under the key "import"
    assert len(card.data.test_people) == 34 and len(card.mean_shape_crop) == 15
    assert card.end_to_end["nme"] == raw["metrics"]["end_to_end"]["nme"]


def test_an_old_or_partial_card_gets_defaults_and_keeps_unknown_keys(tmp_path):
    card = ModelCard.from_dict({"run": "r1", "data": {"rows": 5, "future": 1}, "someday": [1]})
    assert card.inference == Inference() and not card.inference.flip_average
    assert card.end_to_end == {} and card.mean_shape_crop is None
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


def test_cards_describe_data_and_inference_in_words():
    card = ModelCard.read(SHIPPED_MODEL)
    assert card.data.describe().startswith("YouTube-faces video frames") and "34" not in card.data.describe()[:20]
    assert "2750 train, 314 validation, 346 test rows" in card.data.describe()
    assert card.inference.describe() == "flip-averaged"  # re-centring did not pay on the validation people
    recentring = Inference(flip_average=True, recentre={"locator": "keypoints-locator.keras", "min_offset_px": 13.3})
    assert recentring.describe() == ("flip-averaged, crops re-centred by keypoints-locator.keras when a face sits "
                                     "over 13.3 px off-centre")
    assert DataSummary().describe() == "unknown" and Inference().describe() == "single pass"
    assert DataSummary(rows=5, source="/srv/x/faces.csv").describe() == "5 rows of faces.csv"  # no server folders
