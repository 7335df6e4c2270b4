"""Dataset page in real Chromium: counts, augmentation playground, malformed files."""
import pandas as pd
from playwright.sync_api import expect

from tests.helpers import write_synthetic_csv


def _open(streamlit_app, page, tmp_path):
    server = streamlit_app(FKS_DATA_DIR=str(tmp_path / "data"))
    page.goto(server.url + "/dataset")
    expect(page.get_by_role("heading", name="Dataset")).to_be_visible()
    page.get_by_text("Upload", exact=True).click()
    return page


def _metric(page, label):
    return page.get_by_test_id("stMetric").filter(has=page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True))


def test_upload_shows_counts_and_a_flipped_sample(streamlit_app, page, tmp_path):
    csv = write_synthetic_csv(tmp_path / "small_training.csv", n=30, incomplete_every=3)  # rows 1, 4, 7, ... lack 5 points
    _open(streamlit_app, page, tmp_path)
    page.locator("input[type=file]").first.set_input_files(str(csv))
    expect(_metric(page, "Rows")).to_contain_text("30")
    expect(_metric(page, "Complete rows")).to_contain_text("20")
    expect(_metric(page, "Incomplete rows")).to_contain_text("10")
    expect(page.get_by_text("Rows labelling each keypoint")).to_be_visible()
    page.get_by_role("tab", name="Distributions").click()
    expect(page.get_by_text("0.0% of faces are turned past 0.5")).to_be_visible()  # synthetic faces look ahead
    page.get_by_role("tab", name="Augmentation").click()
    expect(page.get_by_text("augmented (flipped: left/right names swapped)")).to_be_visible()
    expect(page.get_by_text("Random batch")).to_be_visible()


def test_malformed_file_names_the_problem(streamlit_app, page, tmp_path):
    csv = write_synthetic_csv(tmp_path / "t.csv", n=5)
    table = pd.read_csv(csv)
    table.loc[1, "Image"] = "1 2 3"
    bad = tmp_path / "bad_training.csv"
    table.to_csv(bad, index=False)
    _open(streamlit_app, page, tmp_path)
    page.locator("input[type=file]").first.set_input_files(str(bad))
    expect(page.get_by_text("is not usable training data")).to_be_visible()
    expect(page.get_by_text("Row 2, column 'Image': 3 pixels, expected 9216")).to_be_visible()
