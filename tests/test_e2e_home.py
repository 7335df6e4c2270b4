"""Home page in real Chromium, used like a person: read it, open the model card, download it, go to
another page and back. settle() after every step fails on any Streamlit exception."""
import json

from playwright.sync_api import expect

from tests.e2e import screenshot, settle

SCREENSHOT = "/tmp/fks-home.png"


def _page_height(page) -> int:
    return page.evaluate("Math.max(...[...document.querySelectorAll('*')].map(e => e.scrollHeight))")


def test_home_shows_purpose_pages_and_active_model(streamlit_app, page, app_model_path):
    server = streamlit_app()
    page.goto(server.url)
    expect(page.get_by_role("heading", name="Facial Keypoints Studio")).to_be_visible()
    settle(page)
    expect(page.get_by_text("15 facial keypoints")).to_be_visible()
    expect(page.get_by_text("Active model")).to_be_visible()
    expect(page.get_by_text(app_model_path.name).first).to_be_visible()
    expect(page.get_by_role("button", name="Deploy")).to_have_count(0)  # client.toolbarMode = "minimal"
    if app_model_path.name == "keypoints.keras":  # the shipped model's card says what the data is
        expect(page.get_by_text("YouTube-faces video frames").first).to_be_visible()
        expect(page.get_by_text("int8 twin (validation NME").first).to_be_visible()  # what the webcam runs
        with page.expect_download() as download:
            page.get_by_text("Download the model card (JSON)").click()
        assert "metrics" in json.loads(open(download.value.path()).read())
        settle(page)
        page.get_by_text("Model card (JSON)", exact=True).click()
        settle(page)
        assert _page_height(page) < 4000, "the card's JSON should scroll in its box, not stretch the page"
    screenshot(page, SCREENSHOT)
    page.get_by_role("link", name="Dataset").click()
    settle(page)
    expect(page.get_by_role("heading", name="Dataset")).to_be_visible()
    page.get_by_role("link", name="Home").click()
    settle(page)
    expect(page.get_by_role("heading", name="Facial Keypoints Studio")).to_be_visible()


def test_home_explains_what_to_do_without_a_model(streamlit_app, page, tmp_path):
    server = streamlit_app(FKS_MODEL=str(tmp_path / "missing.keras"))
    page.goto(server.url)
    settle(page)
    expect(page.get_by_text("No trained model was found")).to_be_visible()
    expect(page.get_by_text("python -m trainer train").first).to_be_visible()
