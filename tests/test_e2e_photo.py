"""Photo page in real Chromium, used like a person: upload, every effect and privacy mode, sensitivity,
removing a face, downloads, switching source; bad files. settle() after every step fails on any exception."""

import json

import pandas as pd
import pytest
from playwright.sync_api import expect

from core.overlays import EFFECTS
from core.schema import COORD_COLUMNS
from tests.e2e import choose, screenshot, settle

SCREENSHOT = "/tmp/fks-photo.png"
expect.set_options(timeout=30_000)  # a shared 2-core machine can take more than the 5 s default to rerun


def _upload(page, path):
    page.locator("input[type=file]").first.set_input_files(str(path))
    settle(page)


def _faces_found(page):
    return page.locator('[data-testid="stMetric"]', has_text="Faces found")


def _sensitivity(page, key):
    page.get_by_test_id("stSlider").filter(has_text="Detector sensitivity").get_by_role("slider").press(key)
    settle(page)


@pytest.fixture
def photo_page(streamlit_app, page):
    server = streamlit_app()
    page.goto(server.url + "/photo")
    expect(page.get_by_role("heading", name="Photo")).to_be_visible()
    settle(page)
    return page


def test_obamas_photo_through_every_effect_privacy_mode_and_face_removal(photo_page, photos):
    page = photo_page
    _upload(page, photos / "obamas4.jpg")
    expect(_faces_found(page)).to_contain_text("2")
    for effect in [e for e in EFFECTS if e not in ("blur", "pixelate")] + ["sunglasses"]:
        choose(page, "Overlay", effect)
        if effect == "labelled keypoints":
            expect(page.get_by_text("Keypoint numbers: 1 left eye center")).to_be_visible()
    for privacy in ("blur", "pixelate", "off", "blur"):
        page.get_by_test_id("stRadio").filter(has_text="Privacy").get_by_text(privacy, exact=True).click()
        settle(page)
    expect(page.get_by_role("combobox", name="Faces to hide")).to_be_visible()
    _sensitivity(page, "ArrowLeft")
    _sensitivity(page, "End")  # the most sensitive setting also takes background patches for faces
    expect(_faces_found(page)).not_to_contain_text("2")
    _sensitivity(page, "Home")
    for _ in range(4):  # back to the default, 5
        _sensitivity(page, "ArrowRight")
    expect(_faces_found(page)).to_contain_text("2")

    with page.expect_download() as download:
        page.get_by_text("Download keypoints (CSV)").click()
    table = pd.read_csv(download.value.path())
    assert list(table["face"]) == [1, 2]  # the numbers the pickers show
    assert set(COORD_COLUMNS) <= set(table.columns) and table[list(COORD_COLUMNS)].notna().all().all()

    # remove face 1 from the result (e.g. a scarf taken for a face): face 2 keeps its number everywhere
    keep = page.get_by_test_id("stMultiSelect").filter(has_text="Faces in the result")
    keep.get_by_role("button", name="Remove face 1").click()
    settle(page)
    with page.expect_download() as download:
        page.get_by_text("Download keypoints (CSV)").click()
    assert list(pd.read_csv(download.value.path())["face"]) == [2]
    with page.expect_download() as download:
        page.get_by_text("Download keypoints (JSON)").click()
    assert download.value.suggested_filename == "obamas4_keypoints.json"
    assert [f["face"] for f in json.loads(open(download.value.path()).read())["faces"]] == [2]
    screenshot(page, SCREENSHOT)

    page.get_by_text("Sample", exact=True).click()  # switch source: samples, camera, and back
    settle(page)
    choose(page, "Sample photo", "fawzia.jpg")
    page.get_by_text("Camera", exact=True).click()
    settle(page)
    page.get_by_text("Upload", exact=True).click()
    settle(page)
    _upload(page, photos / "streetview_no_face.jpg")
    expect(_faces_found(page)).to_contain_text("0")
    expect(page.get_by_text("try raising")).to_be_visible()
    expect(page.get_by_text("Download keypoints (CSV)")).to_have_count(0)  # nothing to download for no face
    expect(page.get_by_text("Download keypoints (JSON)")).to_have_count(0)
    _sensitivity(page, "End")
    expect(page.get_by_text("even at the highest detector sensitivity")).to_be_visible()
    expect(page.get_by_text("try raising")).to_have_count(0)  # the slider is at its maximum already


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
    expect(_faces_found(page)).to_contain_text("0")
    expect(page.get_by_text("No face was found")).to_be_visible()
    expect(page.get_by_text("Could not use this file")).to_have_count(0)

    good = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8))[1].tobytes()
    corrupt = tmp_path / "broken.jpg"
    corrupt.write_bytes(good[: len(good) // 3])
    _upload(page, corrupt)
    expect(page.get_by_text("Could not use this file")).to_be_visible()
    expect(page.get_by_text("corrupt or truncated")).to_be_visible()
