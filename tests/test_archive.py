"""Model archives out and in (trainer.archive, `python -m trainer export|import-model`): a round trip,
and every kind of bad archive refused with a message and nothing written in runs/."""
import json
import zipfile

import numpy as np
import pytest

from core.card import ModelCard
from core.model import KeypointPredictor
from core.pipeline import FacePipeline
from core.registry import active_model_path
from trainer import runfolders
from trainer.architecture import build_model
from trainer.archive import ArchiveError, export_archive, import_archive
from trainer.cli import main
from trainer.export import load_keras_model, save_model

WIDTHS = (4, 8, 8, 16, 16)


@pytest.fixture
def runs(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.setenv("FKS_RUNS_DIR", str(root))
    monkeypatch.delenv("FKS_MODEL", raising=False)
    return root


def _card(run: str, **extra) -> dict:
    return {"model": "model.keras", "run": run, "architecture": {"widths": list(WIDTHS)},
            "config": {"widths": list(WIDTHS), "data": "faces.csv"}, "metrics": {"test_rmse_px": 3.5}, **extra}


@pytest.fixture
def finished_run(runs):
    """A finished run folder as trainer.runs leaves it: model, ONNX twin, card, config, state."""
    path = runs / "trained"
    save_model(build_model(WIDTHS), path / "model.keras")
    (path / "model.json").write_text(json.dumps(_card("trained")))
    (path / "config.json").write_text(json.dumps({"widths": list(WIDTHS)}))
    (path / "state.json").write_text(json.dumps({"finished": True}))
    return path


def _zip(path, members: dict) -> str:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return str(path)


def _model_bytes(tmp_path, model) -> bytes:
    path = tmp_path / "made.keras"
    model.save(path)
    return path.read_bytes()


def test_export_then_import_round_trip_registers_a_finished_run_that_is_not_active(finished_run, runs, tmp_path):
    out = tmp_path / "trained.zip"
    assert export_archive("trained", out) == ["model.keras", "model.onnx", "model.json"]
    with zipfile.ZipFile(out) as zf:
        card = json.loads(zf.read("model.json"))
        assert card["metrics"] == {"test_rmse_px": 3.5} and card["model"] == "model.keras"
        assert zf.read("model.keras") == (finished_run / "model.keras").read_bytes()
    with pytest.raises(ArchiveError, match="already exists"):
        export_archive("trained", out)

    path = import_archive(out, "copy")
    assert path == runs / "copy"
    listed = runfolders.list_runs(runs)
    assert listed.set_index("run").loc["copy", "status"] == "finished"
    for mine, theirs in zip(load_keras_model(path / "model.keras").get_weights(),
                            load_keras_model(finished_run / "model.keras").get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    card = json.loads((path / "model.json").read_text())
    assert card["run"] == "copy" and card["imported"]["from_run"] == "trained"
    assert KeypointPredictor(path / "model.keras").predict_crops(np.zeros((1, 96, 96), np.uint8)).shape == (1, 15, 2)
    assert json.loads((path / "config.json").read_text())["widths"] == list(WIDTHS)
    assert active_model_path() != path / "model.keras"  # importing never activates
    assert not [p for p in runs.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_an_existing_run_is_never_overwritten(finished_run, runs, tmp_path):
    out = tmp_path / "trained.zip"
    export_archive("trained", out)
    before = {p.name: p.read_bytes() for p in finished_run.iterdir()}
    with pytest.raises(ArchiveError, match="already exists"):
        import_archive(out)  # the card's run name: 'trained'
    assert {p.name: p.read_bytes() for p in finished_run.iterdir()} == before


def test_export_of_the_shipped_model_holds_the_files_its_card_uses(runs, tmp_path):
    from core.paths import SHIPPED_MODEL

    if not SHIPPED_MODEL.is_file():
        pytest.skip("no shipped model")
    out = tmp_path / "shipped.zip"
    members = export_archive("shipped", out)
    with zipfile.ZipFile(out) as zf:
        card = json.loads(zf.read("model.json"))
        locator = (card["inference"].get("recentre") or {}).get("locator")  # the locator only when it re-centres
        located = {locator, locator.replace(".keras", ".onnx")} if locator else set()
        assert set(members) == {"model.keras", "model.onnx", "model.json"} | located
        assert zf.read("model.keras") == SHIPPED_MODEL.read_bytes()
        if locator:
            assert zf.read(locator) == (SHIPPED_MODEL.parent / locator).read_bytes()
    # imported, it runs live on its float twin: no int8 twin travels, so the card's verdict on one is dropped
    imported = import_archive(out, "shipped-again")
    assert ModelCard.read(imported / "model.keras").inference.int8 is None
    pipeline = FacePipeline(imported / "model.keras")
    assert pipeline.live_predictor is pipeline.predictor


def _refused(archive, runs, match: str) -> None:
    before = sorted(p.name for p in runs.iterdir())
    with pytest.raises(ArchiveError, match=match) as refused:
        import_archive(archive, "incoming")
    assert str(runs) not in str(refused.value)  # no server paths in what a page shows
    assert sorted(p.name for p in runs.iterdir()) == before  # nothing written, no staging left


def test_bad_archives_are_refused_before_anything_is_written(runs, tmp_path):
    good_model = _model_bytes(tmp_path, build_model(WIDTHS))
    card = json.dumps(_card("x"))
    (tmp_path / "not.zip").write_bytes(b"PK\x03\x04 this is not a zip")
    _refused(tmp_path / "not.zip", runs, "not a zip archive")
    whole = _zip(tmp_path / "whole.zip", {"model.keras": good_model, "model.json": card})
    (tmp_path / "cut.zip").write_bytes(open(whole, "rb").read()[:-200])
    _refused(tmp_path / "cut.zip", runs, "not a zip archive")
    _refused(_zip(tmp_path / "t1.zip", {"../model.keras": good_model, "model.json": card}), runs, "is a path")
    _refused(_zip(tmp_path / "t2.zip", {"model.keras": good_model, "model.json": card, "sub/x.keras": b""}), runs, "is a path")
    evil_locator = json.dumps(_card("x", inference={"recentre": {"locator": "../../evil.keras"}}))
    _refused(_zip(tmp_path / "t3.zip", {"model.keras": good_model, "model.json": evil_locator}), runs, "plain .keras file name")
    _refused(_zip(tmp_path / "m1.zip", {"model.json": card}), runs, "lacks model.keras")
    _refused(_zip(tmp_path / "m2.zip", {"model.keras": good_model}), runs, "lacks model.json")
    located = json.dumps(_card("x", inference={"recentre": {"locator": "loc.keras"}}))
    _refused(_zip(tmp_path / "m3.zip", {"model.keras": good_model, "model.json": located}), runs, "lacks")
    _refused(_zip(tmp_path / "e.zip", {"model.keras": good_model, "model.json": card, "run.sh": b"rm -rf /"}), runs,
             "does not: run.sh")
    _refused(_zip(tmp_path / "j.zip", {"model.keras": good_model, "model.json": b"{nope"}), runs, "not valid JSON")
    _refused(_zip(tmp_path / "g.zip", {"model.keras": b"garbage", "model.json": card}), runs, "refused: The model file model.keras is unreadable")
    _refused(_zip(tmp_path / "b.zip", {"model.keras": bytes(8 * 2**20), "model.json": card}), runs, "zip bomb")
    with pytest.raises(ArchiveError, match="not allowed"):
        import_archive(_zip(tmp_path / "n.zip", {"model.keras": good_model, "model.json": card}), "../escape")


def test_over_size_members_are_refused_from_their_headers(runs, tmp_path, monkeypatch):
    import trainer.archive

    archive = _zip(tmp_path / "big.zip", {"model.keras": _model_bytes(tmp_path, build_model(WIDTHS)),
                                          "model.json": json.dumps(_card("x"))})
    monkeypatch.setattr(trainer.archive, "MAX_MEMBER_BYTES", 1000)
    _refused(archive, runs, "the limit is")


def test_models_that_must_not_serve_are_refused(runs, tmp_path):
    import keras

    card = json.dumps(_card("x"))

    def archive_of(model, name):
        return _zip(tmp_path / name, {"model.keras": _model_bytes(tmp_path, model), "model.json": card})

    small_input = keras.Sequential([keras.Input((64, 64, 1)), keras.layers.Flatten(), keras.layers.Dense(30)])
    _refused(archive_of(small_input, "in.zip"), runs, "not a keypoint model")
    twenty = keras.Sequential([keras.Input((96, 96, 1)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(20)])
    _refused(archive_of(twenty, "out.zip"), runs, "not a keypoint model")
    for bias, name, match in ((np.nan, "nan.zip", "non-finite"), (np.inf, "inf.zip", "non-finite"),
                              (5.0, "far.zip", "outside the 96x96 face crop")):
        model = build_model(WIDTHS)
        kernel, _ = model.get_layer("keypoints").get_weights()
        model.get_layer("keypoints").set_weights([kernel, np.full(30, bias, np.float32)])
        _refused(archive_of(model, name), runs, match)


def test_cli_exports_and_imports_and_refuses_with_one_line(finished_run, runs, tmp_path, capsys):
    out = tmp_path / "cli.zip"
    assert main(["export", "trained", str(out)]) == 0
    assert main(["import-model", str(out), "--run", "from-cli"]) == 0
    assert "python -m trainer activate from-cli" in capsys.readouterr().out
    assert (runs / "from-cli" / "model.onnx").is_file()
    (tmp_path / "bad.zip").write_bytes(b"nothing")
    assert main(["import-model", str(tmp_path / "bad.zip")]) == 2
    assert main(["import-model", str(out), "--run", "from-cli"]) == 2
    assert main(["export", "no-such-run", str(tmp_path / "x.zip")]) == 2
    err = capsys.readouterr().err
    assert "not a zip archive" in err and "already exists" in err and "no finished model" in err
    assert "Traceback" not in err and str(tmp_path) not in err.split("already exists")[0]
