"""The photo page's "Show rejected boxes" option, headless (streamlit.testing.v1.AppTest)."""
import pytest

from core.detector import DetectorSettings
from core.images import load_image
from core.paths import SHIPPED_MODEL, SHIPPED_VERIFIER
from tests.conftest import REPO


@pytest.mark.shipped_model
def test_show_rejected_boxes_draws_them_and_the_page_keeps_working(photos, monkeypatch):
    if not SHIPPED_VERIFIER.is_file():
        pytest.skip("no shipped verifier")
    from streamlit.testing.v1 import AppTest

    from core.pipeline import FacePipeline

    # What the page must show: the boxes the app's own detection step rejects on this photo (default sensitivity).
    detections = FacePipeline(SHIPPED_MODEL).detect(load_image(photos / "fawzia.jpg"), DetectorSettings(),
                                                    with_rejected=True)
    assert len(detections.rejected_xywh) >= 1  # a photo where the verifier has something to show
    monkeypatch.setenv("FKS_SAMPLES_DIR", str(photos))
    monkeypatch.delenv("FKS_MODEL", raising=False)
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
    shown = [c.value for c in at.caption if "rejected, drawn dashed grey" in c.value]
    assert shown and shown[0].startswith(f"{len(detections.rejected_xywh)} box(es) rejected"), shown
    assert f"under its threshold ({FacePipeline(SHIPPED_MODEL).verifier.threshold:.2f}" in shown[0]
    assert at.metric[0].value == str(len(detections.boxes_xywh))  # rejected boxes are not counted as faces
    box.uncheck().run()
    assert not at.exception and "rejected, drawn dashed grey" not in " ".join(c.value for c in at.caption)
