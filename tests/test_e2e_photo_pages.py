"""Photo page in real Chromium: face numbers on the picture, 'Faces to hide' kept across blur and pixelate,
readable keypoint numbers (close-ups), the verifier's scores on kept and rejected boxes."""
from playwright.sync_api import expect

from tests.e2e import choose, screenshot, settle

expect.set_options(timeout=30_000)


def _hidden_chips(page):
    box = page.get_by_test_id("stMultiSelect").filter(has_text="Faces to hide")
    return sorted(t.strip() for t in box.get_by_role("button").all_inner_texts() if t.strip())


def test_numbers_hiding_choices_close_ups_and_scores(streamlit_app, page, photos, tmp_path):
    server = streamlit_app()
    page.goto(server.url + "/photo")
    expect(page.get_by_role("heading", name="Photo")).to_be_visible()
    settle(page)
    page.locator("input[type=file]").first.set_input_files(str(photos / "obamas4.jpg"))
    settle(page)
    expect(page.get_by_text("result (each face's number on a blue tag)")).to_be_visible()

    page.get_by_test_id("stRadio").filter(has_text="Privacy").get_by_text("blur", exact=True).click()
    settle(page)
    hide = page.get_by_test_id("stMultiSelect").filter(has_text="Faces to hide")
    hide.get_by_role("button", name="Remove face 2").click()
    settle(page)
    page.get_by_test_id("stRadio").filter(has_text="Privacy").get_by_text("pixelate", exact=True).click()
    settle(page)
    hide = page.get_by_test_id("stMultiSelect").filter(has_text="Faces to hide")
    expect(hide.get_by_role("button", name="Remove face 1")).to_be_visible()
    expect(hide.get_by_role("button", name="Remove face 2")).to_have_count(0)  # the choice survived the switch

    choose(page, "Overlay", "labelled keypoints")
    expect(page.get_by_text("Close-ups, so the numbers can be read:")).to_be_visible()
    expect(page.get_by_test_id("stImageCaption").filter(has_text="face 2")).to_be_visible()
    screenshot(page, str(tmp_path / "photo-numbers.png"))

    page.get_by_text("Show rejected boxes").click()
    settle(page)
    page.get_by_test_id("stSlider").filter(has_text="Detector sensitivity").get_by_role("slider").press("End")
    settle(page)
    expect(page.get_by_text("Each face kept shows its number and score")).to_be_visible()
    screenshot(page, str(tmp_path / "photo-scores.png"))
    print(f"screenshots: {tmp_path}")
