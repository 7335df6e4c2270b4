"""The training page headless (Streamlit's AppTest, no browser): a broken run folder is named with its
problem, never a traceback."""
import numpy as np
import pytest

from tests.conftest import REPO


@pytest.fixture
def runs(tmp_path, monkeypatch, app_model_path):
    monkeypatch.setenv("FKS_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("FKS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FKS_MODEL", str(app_model_path))
    (tmp_path / "runs").mkdir()
    return tmp_path / "runs"


def test_a_broken_run_is_listed_with_its_problem(runs):
    from streamlit.testing.v1 import AppTest

    (runs / "garbled").mkdir()
    (runs / "garbled" / "config.json").write_text("{not json")
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()  # the home page first, as a person
    assert not at.exception, [e.value for e in at.exception]
    at.switch_page("pages/training.py").run()
    assert not at.exception, [e.value for e in at.exception]
    warnings = [w.value for w in at.warning]
    assert any(w.startswith("This run cannot be shown:") and "config.json" in w for w in warnings), warnings
    assert any(h.value == "Run 'garbled': broken" for h in at.subheader), [h.value for h in at.subheader]


def test_each_preset_fills_the_lever_widgets_with_its_own_values(runs):
    """Switching presets and back shows each preset's head, loss, augmentation and precision; a choice made
    under one preset applies to it while it is shown, and switching away and back starts from the preset again."""
    from streamlit.testing.v1 import AppTest

    from pages.ui import form
    from trainer.config import config_for

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    at.switch_page("pages/training.py").run()
    assert not at.exception, [e.value for e in at.exception]

    def widgets():
        return (at.selectbox(key=f"head-{label}").value, at.selectbox(key=f"loss-{label}").value,
                at.slider(key=f"noise-{label}").value, at.selectbox(key=f"bf16-{label}").value)

    for preset in ("studio", "full", "quick", "studio"):
        label = form.PRESET_LABELS[preset]
        at.radio(key="preset").set_value(label).run()
        assert not at.exception, [e.value for e in at.exception]
        config = config_for(preset)
        assert widgets() == (config.head, config.loss, config.augment.occlusion_probability, config.mixed_precision)
    label = form.PRESET_LABELS["full"]
    at.radio(key="preset").set_value(label).run()
    at.selectbox(key=f"head-{label}").set_value("softargmax").run()
    at.slider(key=f"noise-{label}").set_value(0.5).run()
    assert not at.exception, [e.value for e in at.exception]
    assert widgets()[:3] == ("softargmax", "mse", 0.5)
    at.radio(key="preset").set_value(form.PRESET_LABELS["quick"]).run()
    at.radio(key="preset").set_value(label).run()
    assert not at.exception, [e.value for e in at.exception]
    assert widgets() == ("gap", "mse", 0.0, False)


def test_a_small_file_defaults_to_a_fraction_and_a_hold_out_that_leaves_nothing_is_refused_before_starting(runs):
    from streamlit.testing.v1 import AppTest

    from trainer.synthetic import write_synthetic_csv

    data = write_synthetic_csv(runs.parent / "data" / "small.csv", n=30)
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    at.switch_page("pages/training.py").run()
    at.radio(key="train-src").set_value("Path on the server").run()
    at.text_input(key="train-path").set_value(str(data)).run()
    assert not at.exception, [e.value for e in at.exception]
    held_out = at.text_input(key=f"test-{data}")
    assert held_out.value == "0.1"  # not the recipe's 500 rows: 30 rows would leave nothing to train on
    held_out.set_value("500").run()
    next(b for b in at.button if b.label == "Start training").click().run()
    errors = [e.value for e in at.error]
    assert any(e.startswith("Held-out test rows: 500 of the 30 complete rows leaves none to train on")
               for e in errors), errors
    assert not [p for p in runs.iterdir() if p.is_dir()]  # nothing started


def test_a_much_worse_model_is_named_before_use_and_an_empty_run_is_not_compared_silently(runs, app_model_path):
    import json
    import shutil

    from streamlit.testing.v1 import AppTest

    from core.card import ModelCard
    from core.model import onnx_path_for
    from trainer.recipe import RecipeConfig

    active = ModelCard.read(app_model_path)
    if not active.end_to_end.nme:
        pytest.skip("the app's model card has no held-out NME to compare with")
    config = json.dumps(RecipeConfig().to_dict())
    for name in ("worse", "cancelled-early"):
        (runs / name).mkdir()
        (runs / name / "config.json").write_text(config)
    (runs / "cancelled-early" / "events.jsonl").write_text(json.dumps({"event": "cancelled", "message": "x"}) + "\n")
    model = runs / "worse" / "model.keras"
    shutil.copy(app_model_path, model)
    shutil.copy(onnx_path_for(app_model_path), onnx_path_for(model))
    (runs / "worse" / "events.jsonl").write_text("".join(json.dumps(
        {"event": "epoch_end", "stage": 0, "epoch": e, "loss": 0.5 / (e + 1), "val_loss": 0.6 / (e + 1),
         "rmse_px": 9.0, "val_rmse_px": 9.5, "lr": 1e-3, "batch_size": 32}) + "\n" for e in range(3)))
    ModelCard.from_dict({"run": "worse", "metrics": {"test_rmse_px": 18.0, "end_to_end": {"nme": 0.3}}}).write(model)

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    at.switch_page("pages/training.py").run()
    assert not at.exception, [e.value for e in at.exception]
    nme = active.end_to_end.nme
    warnings = [w.value for w in at.warning]
    assert any(w.startswith(f"'worse' is much less accurate than the active model: held-out NME 0.3000 against "
                            f"{nme:.4f}") for w in warnings), warnings
    assert any(b.label == "Use this model (worse) anyway" for b in at.button)
    compare = next(m for m in at.multiselect if m.label == "Compare runs' curves")
    compare.set_value(["worse", "cancelled-early"]).run()
    assert not at.exception, [e.value for e in at.exception]
    warnings = [w.value for w in at.warning]
    assert "Nothing to compare: 'cancelled-early' has no finished epoch (cancelled)." in warnings, warnings


def test_the_default_preset_starts_from_the_active_model_and_refuses_its_training_people_as_held_out(runs,
                                                                                                     app_model_path):
    """The default (adapt) preset shows the active model's widths with fine-tuning on; a file whose held-out
    people trained the active model is refused before anything starts, naming why; one of strangers starts."""
    from streamlit.testing.v1 import AppTest

    from core.card import read_card
    from core.model import file_sha256
    from pages.ui import form
    from tests.helpers import wait_until
    from trainer import runfolders
    from trainer.data import write_kaggle_csv
    from trainer.synthetic import synthetic_faces

    card = read_card(app_model_path)
    if not card.data.train_people:
        pytest.skip("the app's model card does not name the people it trained on")
    faces = synthetic_faces(40, people=10)
    seen = faces.groups.copy()
    faces.groups = np.array([card.data.train_people[int(g[1:])] for g in seen])
    known = write_kaggle_csv(faces, runs.parent / "data" / "known.csv")
    faces.groups = np.array([f"stranger-{g}" for g in seen])
    strangers = write_kaggle_csv(faces, runs.parent / "data" / "strangers.csv")

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    at.switch_page("pages/training.py").run()
    label = form.PRESET_LABELS["adapt"]
    assert at.radio(key="preset").value == label
    assert at.text_input(key=f"w-{label}").value == ",".join(map(str, card.architecture.widths))
    assert at.toggle(key=f"tune-{label}").value
    at.radio(key="train-src").set_value("Path on the server").run()
    for path, refused in ((known, True), (strangers, False)):
        at.text_input(key="train-path").set_value(str(path)).run()
        next(b for b in at.button if b.label == "Start training").click().run()
        assert not at.exception, [e.value for e in at.exception]
        errors = [e.value for e in at.error]
        if refused:
            assert any(f"{app_model_path.name} was trained on" in e and "holds out" in e for e in errors), errors
            assert not any(str(runs.parent) in e or "/models/" in e for e in errors)  # no server paths
            assert not [p for p in runs.iterdir() if p.is_dir()]  # nothing started
        else:
            assert not errors and [s.value for s in at.success if s.value.startswith("Started run")], errors
    run = next(p for p in runs.iterdir() if p.is_dir())
    wait_until(lambda: runfolders.status(run) != "running", 600, "the adapted run to finish",
               detail=lambda: (run / "log.txt").read_text()[-2000:] if (run / "log.txt").is_file() else "")
    assert runfolders.status(run) == "finished"
    adapted = read_card(run / "model.keras")
    assert adapted.parent["sha256"] == file_sha256(app_model_path)
    assert adapted.architecture.widths == card.architecture.widths and adapted.head == card.head
