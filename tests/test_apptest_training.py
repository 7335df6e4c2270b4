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
