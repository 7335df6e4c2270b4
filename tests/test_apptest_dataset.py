"""The dataset page headless (Streamlit's AppTest): the import offer says what its time estimate is."""
from tests.conftest import REPO


def test_the_import_offer_says_what_its_estimate_measured(tmp_path, monkeypatch, shared_data, app_model_path):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("FKS_DATA_DIR", str(tmp_path / "data"))  # no imported data yet
    monkeypatch.setenv("FKS_MODEL", str(app_model_path))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    at.switch_page("pages/dataset.py").run()
    assert not at.exception, [e.value for e in at.exception]
    offer = next(i.value for i in at.info if i.value.startswith("No imported data yet"))
    assert "On 2 idle cores this takes about 50 s (bench/bench_import.py)" in offer
    assert "counts down from the pace it measures" in offer
