"""Dataset page in real Chromium: an uploaded file survives a browser reload; removing it forgets it."""
from playwright.sync_api import expect

from tests.e2e import settle
from tests.helpers import write_synthetic_csv

expect.set_options(timeout=30_000)


def _rows(page):
    label = page.get_by_test_id("stMetricLabel").get_by_text("Rows", exact=True)
    return page.get_by_test_id("stMetric").filter(has=label)


def test_an_upload_survives_a_reload_and_goes_when_removed(streamlit_app, page, tmp_path):
    server = streamlit_app(FKS_DATA_DIR=str(tmp_path / "data"))
    page.goto(server.url + "/dataset")
    expect(page.get_by_role("heading", name="Dataset")).to_be_visible()
    settle(page)
    page.get_by_text("Upload", exact=True).click()
    settle(page)
    page.locator("input[type=file]").first.set_input_files(str(write_synthetic_csv(tmp_path / "mine.csv", n=30)))
    settle(page)
    expect(_rows(page)).to_contain_text("30")

    page.reload()
    settle(page)
    expect(page.get_by_text("uploaded before the page was reloaded")).to_be_visible()
    expect(page.locator("code").filter(has_text="mine.csv")).to_be_visible()  # its own name, not the stored one
    expect(_rows(page)).to_contain_text("30")

    page.locator("input[type=file]").first.set_input_files(str(write_synthetic_csv(tmp_path / "other.csv", n=24)))
    settle(page)
    expect(_rows(page)).to_contain_text("24")
    page.get_by_test_id("stFileChipDeleteBtn").first.click()
    settle(page)
    expect(_rows(page)).to_have_count(0)  # removed: nothing shown, and a reload does not bring it back
    page.reload()
    settle(page)
    expect(_rows(page)).to_have_count(0)
    page.get_by_text("Upload", exact=True).click()
    settle(page)
    expect(page.get_by_text("500MB per file")).to_be_visible()  # the server's limit, not a rounded "1GB"
