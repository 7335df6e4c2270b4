"""The photo page's "Show rejected boxes" option, headless (streamlit.testing.v1.AppTest)."""
import pytest

from core.paths import SHIPPED_VERIFIER
from tests.conftest import REPO


def test_show_rejected_boxes_draws_them_and_the_page_keeps_working(photos, monkeypatch):
    if not SHIPPED_VERIFIER.is_file():
        pytest.skip("no shipped verifier")
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("FKS_SAMPLES_DIR", str(photos))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)  # the entry point, so the page links resolve
    at.switch_page("pages/photo.py").run()
    assert not at.exception
    next(r for r in at.radio if r.label == "Source").set_value("Sample").run()
    sample = next(s for s in at.selectbox if s.label == "Sample photo")
    sample.set_value("fawzia.jpg").run()
    assert not at.exception
    box = next(c for c in at.checkbox if c.label == "Show rejected boxes")
    assert not box.disabled
    box.check().run()
    assert not at.exception
    captions = " ".join(c.value for c in at.caption)
    assert "rejected by the face verifier" in captions
    assert at.metric[0].value == "1"
    box.uncheck().run()
    assert not at.exception and "rejected by the face verifier" not in " ".join(c.value for c in at.caption)
