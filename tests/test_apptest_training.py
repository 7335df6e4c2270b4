"""The training page headless (Streamlit's AppTest, no browser): a broken run folder is named with its
problem, never a traceback."""
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
                at.slider(key=f"noise-{label}").value, at.toggle(key=f"bf16-{label}").value)

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
