"""Home page in real Chromium against a real `streamlit run` server."""
from playwright.sync_api import expect


def test_home_shows_purpose_pages_and_active_model(streamlit_app, page, app_model_path):
    server = streamlit_app()
    page.goto(server.url)
    expect(page.get_by_role("heading", name="Facial Keypoints Studio")).to_be_visible()
    expect(page.get_by_text("15 facial keypoints")).to_be_visible()
    expect(page.get_by_text("Active model")).to_be_visible()
    expect(page.get_by_text(app_model_path.name).first).to_be_visible()


def test_home_explains_what_to_do_without_a_model(streamlit_app, page, tmp_path):
    server = streamlit_app(FKS_MODEL=str(tmp_path / "missing.keras"))
    page.goto(server.url)
    expect(page.get_by_text("No trained model was found")).to_be_visible()
    expect(page.get_by_text("python -m trainer train").first).to_be_visible()
