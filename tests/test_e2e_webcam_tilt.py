"""Webcam page in real Chromium, the fake camera playing a head that tilts +-40 degrees (the shared video's
frames turned by a sine over 8 s, as bench/bench_tilt.py feeds them): the overlay stays on the face across
the whole sweep, read from the page's own readout, and a snapshot holds the face's keypoints."""
import contextlib
import io
import re

import cv2
import numpy as np
import pandas as pd
from playwright.sync_api import expect

from core.schema import COORD_COLUMNS, INDEX
from tests.e2e import assert_no_exception, screenshot, settle, webcam_page
from tests.helpers import video_frames, write_y4m

STEP_MS = 30_000
READOUT = re.compile(r"(\d+) frames this stream, a face in (\d+)")
SWEEP_FRAMES = 240  # 8 s at 30 fps: one period of the sine


def _tilting_camera(shared_data, path):
    frames = video_frames(shared_data / "video" / "frontal_face_320x240.mp4", limit=SWEEP_FRAMES)
    angles = 40 * np.sin(2 * np.pi * np.arange(len(frames)) / SWEEP_FRAMES)
    h, w = frames[0].shape[:2]
    turned = [cv2.warpAffine(f, cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), float(a), 1.0), (w, h),
                             borderMode=cv2.BORDER_REPLICATE) for f, a in zip(frames, angles, strict=True)]
    return write_y4m(turned, path)


def _readout(page, at_least: int, timeout_s: float = 120) -> tuple[int, int]:
    """(frames, frames with a face) of the playing stream once at least `at_least` frames went through."""
    caption = page.get_by_text(READOUT)
    for _ in range(int(timeout_s * 2)):
        if caption.count():
            match = READOUT.search(caption.first.inner_text())
            if match and int(match[1]) >= at_least:
                return int(match[1]), int(match[2])
        page.wait_for_timeout(500)
        assert_no_exception(page)
    raise AssertionError(f"fewer than {at_least} frames in {timeout_s} s: {caption.all_inner_texts()}, "
                         f"readout {page.get_by_test_id('stMetric').all_inner_texts()}")


def test_the_overlay_stays_on_a_tilting_head_across_the_sweep(shared_data, streamlit_app, playwright_driver, tmp_path):
    camera = _tilting_camera(shared_data, tmp_path / "tilting.y4m")
    with webcam_page(streamlit_app, playwright_driver, camera, tmp_path / "data", STEP_MS) as (page, _):
        try:
            page.get_by_role("combobox", name="Effect").click()
            page.get_by_role("option", name="keypoints", exact=True).click()
            settle(page)
            webrtc = page.frame_locator('iframe[title*="webrtc_streamer"]')
            webrtc.get_by_role("button", name="START").click()
            expect(page.get_by_text("ms/frame")).to_be_visible(timeout=STEP_MS)
            settle(page)
            first, first_with_face = _readout(page, at_least=30)  # past the stream's start
            last, last_with_face = _readout(page, at_least=first + SWEEP_FRAMES)  # a whole sweep later
            on = (last_with_face - first_with_face) / (last - first)
            screenshot(page, str(tmp_path / "webcam-tilt.png"))
            assert on >= 0.95, (first, first_with_face, last, last_with_face)

            page.get_by_role("button", name="Take a snapshot").click()
            expect(page.get_by_role("button", name="Download its keypoints (CSV)")).to_be_visible(timeout=STEP_MS)
            settle(page)
            with page.expect_download() as info:
                page.get_by_role("button", name="Download its keypoints (CSV)").click()
            keypoints = pd.read_csv(io.StringIO(open(info.value.path()).read()))
            assert len(keypoints) == 1, keypoints  # a face in the snapshot, wherever the sweep was
            points = keypoints[list(COORD_COLUMNS)].to_numpy(float).reshape(-1, 2)
            eyes = points[[INDEX["left_eye_center"], INDEX["right_eye_center"]]]
            mouth = points[INDEX["mouth_center_bottom_lip"]]
            assert np.linalg.norm(mouth - eyes.mean(axis=0)) > 0.6 * np.linalg.norm(eyes[0] - eyes[1])  # a face's shape

            webrtc.get_by_role("button", name="STOP").click()
            expect(page.get_by_text("Stopped")).to_be_visible(timeout=STEP_MS)
            settle(page)
        finally:
            with contextlib.suppress(Exception):
                screenshot(page, str(tmp_path / "webcam-tilt-end.png"))
