"""Photo page in real Chromium: the face verifier's "Show rejected boxes" option on a sample photo."""
import pytest
from playwright.sync_api import expect

from core.paths import SHIPPED_VERIFIER

NO_EXCEPTION = '[data-testid="stException"]'


def test_show_rejected_boxes_on_a_sample_photo(streamlit_app, page, photos, tmp_path):
    if not SHIPPED_VERIFIER.is_file():
        pytest.skip("no shipped verifier")
    server = streamlit_app(FKS_SAMPLES_DIR=str(photos))
    page.goto(server.url + "/photo")
    expect(page.get_by_role("heading", name="Photo")).to_be_visible()
    page.get_by_text("Sample", exact=True).click()
    page.locator('[data-testid="stSelectbox"]', has_text="Sample photo").click()
    page.get_by_role("option", name="fawzia.jpg").click()
    metric = page.locator('[data-testid="stMetric"]', has_text="Faces found")
    expect(metric).to_contain_text("1")  # the scarf is not a face
    expect(page.locator(NO_EXCEPTION)).to_have_count(0)
    page.get_by_text("Show rejected boxes").click()
    expect(page.get_by_text("rejected, drawn dashed grey")).to_be_visible()
    expect(page.locator(NO_EXCEPTION)).to_have_count(0)
    page.get_by_role("group", name="Detector sensitivity").get_by_role("slider").focus()
    page.keyboard.press("End")  # most sensitive: more boxes, all but the face rejected
    expect(page.get_by_text("4 box(es) rejected")).to_be_visible()
    expect(metric).to_contain_text("1")
    expect(page.locator(NO_EXCEPTION)).to_have_count(0)
    page.screenshot(path=str(tmp_path / "rejected.png"), full_page=True)
    page.get_by_text("Show rejected boxes").click()
    expect(page.get_by_text("rejected, drawn dashed grey")).to_have_count(0)
    expect(page.locator(NO_EXCEPTION)).to_have_count(0)
    print(f"screenshot: {tmp_path / 'rejected.png'}")
