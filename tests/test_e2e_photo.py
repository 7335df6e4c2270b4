"""Photo page in real Chromium: upload, face count, downloads, and bad files."""

import pandas as pd
import pytest
from playwright.sync_api import expect

from core.schema import COORD_COLUMNS


def _upload(page, path):
    page.locator("input[type=file]").first.set_input_files(str(path))


@pytest.fixture
def photo_page(streamlit_app, page):
    server = streamlit_app()
    page.goto(server.url + "/photo")
    expect(page.get_by_role("heading", name="Photo")).to_be_visible()
    return page


def test_obamas_photo_gives_two_faces_and_a_csv_of_two_by_fifteen(photo_page, photos):
    page = photo_page
    _upload(page, photos / "obamas4.jpg")
    metric = page.locator('[data-testid="stMetric"]', has_text="Faces found")
    expect(metric).to_contain_text("2")
    expect(page.get_by_text("Download image (PNG)")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_text("Download keypoints (CSV)").click()
    table = pd.read_csv(download.value.path())
    assert len(table) == 2
    assert set(COORD_COLUMNS) <= set(table.columns)
    assert table[list(COORD_COLUMNS)].notna().all().all()
    with page.expect_download() as download:
        page.get_by_text("Download keypoints (JSON)").click()
    assert download.value.suggested_filename == "obamas4_keypoints.json"


def test_corrupt_and_non_image_files_show_errors_and_the_page_recovers(photo_page, tmp_path):
    import cv2
    import numpy as np

    page = photo_page
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a picture")
    _upload(page, text)
    expect(page.get_by_text("Could not use this file")).to_be_visible()
    expect(page.get_by_text("not an image file")).to_be_visible()

    fine = tmp_path / "grey.png"
    fine.write_bytes(cv2.imencode(".png", np.full((200, 300, 3), 128, np.uint8))[1].tobytes())
    _upload(page, fine)  # the page works again after an error
    expect(page.locator('[data-testid="stMetric"]', has_text="Faces found")).to_contain_text("0")
    expect(page.get_by_text("No face was found")).to_be_visible()
    expect(page.get_by_text("Could not use this file")).to_have_count(0)

    good = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8))[1].tobytes()
    corrupt = tmp_path / "broken.jpg"
    corrupt.write_bytes(good[: len(good) // 3])
    _upload(page, corrupt)
    expect(page.get_by_text("Could not use this file")).to_be_visible()
    expect(page.get_by_text("corrupt or truncated")).to_be_visible()
