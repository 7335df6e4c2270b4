"""Webcam page in real Chromium: a fake camera fed from a .y4m, WebRTC over loopback only.

Used like a person: turn on recording, START, change the effect, take a snapshot and download it,
STOP, download the clip, START again, STOP. After every step the page must show no Streamlit
exception; server-side figures are read from the page's own readout. The page has a `run_every`
fragment, so instead of waiting for an idle app each step waits for the element it expects.
"""
import io
import os
import re
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from playwright.sync_api import Page, expect

from core.schema import COORD_COLUMNS
from tests.conftest import REPO, SHARED_DATA, launch_chromium
from tests.e2e import assert_no_exception, settle
from tests.helpers import video_frames, write_y4m

VIDEO = SHARED_DATA / "video" / "frontal_face_320x240.mp4"
#: How long a step may take to show its result on a loaded 2-core machine.
STEP_MS = 30_000
READOUT = re.compile(r"(\d+) frames this stream, a face in (\d+)")


def _fake_camera(tmp_path):
    """The real one-person video as the fake camera (the test takes the shared_data fixture: it skips without it,
    as a camera with no face to find would test plumbing only)."""
    frames = video_frames(VIDEO, limit=120)
    return write_y4m(frames, tmp_path / "camera.y4m"), frames


def _marker_pixels(image_bgr: np.ndarray) -> np.ndarray:
    """Where the "keypoints" effect's green dots are (loose enough to survive H.264's 4:2:0 colour)."""
    b, g, r = (image_bgr[..., i].astype(int) for i in range(3))
    return (g > 150) & (g - r > 90) & (g - b > 90)


def _readout(page: Page, at_least: int, timeout_s: float = 90) -> tuple[int, int]:
    """(frames, frames with a face) of the playing stream once at least `at_least` frames went through."""
    caption = page.get_by_text(READOUT)
    deadline_ms = timeout_s * 1000
    waited = 0
    while waited < deadline_ms:
        if caption.count():
            match = READOUT.search(caption.first.inner_text())
            if match and int(match[1]) >= at_least:
                return int(match[1]), int(match[2])
        page.wait_for_timeout(500)
        waited += 500
        assert_no_exception(page)
    raise AssertionError(f"fewer than {at_least} frames in {timeout_s} s: {caption.all_inner_texts()}, "
                         f"readout {page.get_by_test_id('stMetric').all_inner_texts()}")


def _detection_processes(server_pid: int) -> list[int]:
    """Children of the app server that run core.detector.serve_detections (the webcam's niced cascade)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == server_pid and b"serve_detections" in command:
            found.append(int(entry.name))
    return found


def _wait_for_detection_processes(server_pid: int, count: int, timeout_s: float = 30) -> list[int]:
    deadline = time.time() + timeout_s
    while len(found := _detection_processes(server_pid)) != count and time.time() < deadline:
        time.sleep(0.5)
    return found


def _download(page: Page, button: str) -> bytes:
    with page.expect_download() as info:
        page.get_by_role("button", name=button).click()
    return open(info.value.path(), "rb").read()


def test_webcam_start_effect_snapshot_stop_clip_and_start_again(streamlit_app, playwright_driver, tmp_path,
                                                                 shared_data):
    camera, source_frames = _fake_camera(tmp_path)
    assert max(_marker_pixels(f).sum() for f in source_frames) < 20  # the camera itself shows no green dots
    server = streamlit_app(FKS_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(REPO / "tests" / "loopback_ice"))
    browser = launch_chromium(playwright_driver, [f"--use-file-for-fake-video-capture={camera}"])
    try:
        page = browser.new_context(viewport={"width": 1400, "height": 1400}, accept_downloads=True).new_page()
        page.set_default_timeout(60_000)
        page.goto(server.url + "/webcam")
        expect(page.get_by_role("heading", name="Webcam")).to_be_visible(timeout=STEP_MS)
        settle(page)
        expect(page.get_by_text("Not started")).to_be_visible(timeout=STEP_MS)

        page.get_by_test_id("stCheckbox").filter(has_text="Record a clip").click()
        settle(page)
        webrtc = page.frame_locator('iframe[title*="webrtc_streamer"]')
        webrtc.get_by_role("button", name="START").click()
        expect(page.get_by_text("ms/frame")).to_be_visible(timeout=STEP_MS)
        expect(page.get_by_text("Recording… press STOP to finish the clip.")).to_be_visible(timeout=STEP_MS)
        assert_no_exception(page)
        frames, with_face = _readout(page, at_least=60)
        assert with_face / frames > 0.7, (frames, with_face)
        linux = Path("/proc/self/stat").is_file()
        if linux:  # the cascade runs in one niced child of the server while the stream plays
            (detector_pid,) = _wait_for_detection_processes(server.proc.pid, 1)
            assert os.getpriority(os.PRIO_PROCESS, detector_pid) > os.getpriority(os.PRIO_PROCESS, server.proc.pid)
        video = webrtc.locator("video")
        playing = video.evaluate("v => new Promise(r => { const t0 = v.currentTime; "
                                 "setTimeout(() => r({advanced: v.currentTime > t0, width: v.videoWidth, "
                                 "paused: v.paused}), 1500); })")
        assert playing["advanced"] and playing["width"] > 0 and not playing["paused"], playing

        page.get_by_role("combobox", name="Effect").click()
        page.get_by_role("option", name="keypoints", exact=True).click()
        expect(page.get_by_role("combobox", name="Effect")).to_have_value("keypoints", timeout=STEP_MS)
        page.wait_for_timeout(2000)  # let the new effect reach the stream
        assert_no_exception(page)

        page.get_by_role("button", name="Take a snapshot").click()
        expect(page.get_by_role("button", name="Download the frame (PNG)")).to_be_visible(timeout=STEP_MS)
        assert_no_exception(page)
        page.screenshot(path=str(tmp_path / "webcam-live.png"), full_page=True)
        png = cv2.imdecode(np.frombuffer(_download(page, "Download the frame (PNG)"), np.uint8), cv2.IMREAD_COLOR)
        keypoints = pd.read_csv(io.StringIO(_download(page, "Download its keypoints (CSV)").decode()))
        height, width = png.shape[:2]  # 640x480 asked for; Chromium lowers it when the CPU is busy
        assert width >= 320 and width * 3 == height * 4, png.shape
        assert_no_exception(page)
        assert len(keypoints) == 1 and set(COORD_COLUMNS) <= set(keypoints.columns)
        points = keypoints[list(COORD_COLUMNS)].to_numpy(float).reshape(-1, 2)
        assert np.isfinite(points).all() and (points >= 0).all() and (points < [width, height]).all()
        markers = _marker_pixels(png)
        assert markers.sum() > 100  # green dots drawn ...
        on_points = [markers[max(0, int(y) - 3):int(y) + 4, max(0, int(x) - 3):int(x) + 4].any() for x, y in points]
        assert sum(on_points) >= 13, on_points  # ... where the CSV says the keypoints are

        last_frames, _ = _readout(page, at_least=frames)
        webrtc.get_by_role("button", name="STOP").click()
        expect(page.get_by_text("Stopped")).to_be_visible(timeout=STEP_MS)
        expect(page.get_by_text("ms/frame")).to_have_count(0, timeout=STEP_MS)  # no stale figures after STOP
        assert_no_exception(page)
        if linux:  # ...and ends with it
            assert _wait_for_detection_processes(server.proc.pid, 0) == []
        clip_button = page.get_by_role("button", name="Download the clip (MP4)")
        try:  # the recorder closes its file after STOP; on a busy machine that has taken over 30 s
            expect(clip_button).to_be_visible(timeout=2 * STEP_MS)
        except AssertionError:
            page.screenshot(path=str(tmp_path / "no-clip.png"), full_page=True)
            raise AssertionError(f"no clip to download; the clip column says: "
                                 f"{page.get_by_text('clip', exact=False).all_inner_texts()}") from None
        assert_no_exception(page)
        clip_path = tmp_path / "clip.mp4"
        clip_path.write_bytes(_download(page, "Download the clip (MP4)"))
        clip = video_frames(clip_path, size=None, limit=100_000)
        assert len(clip) >= 30 and clip[0].shape[1] >= 320, (len(clip), clip[0].shape if clip else None)
        with_markers = sum(_marker_pixels(f).sum() > 30 for f in clip)
        assert with_markers >= 0.1 * len(clip), (with_markers, len(clip))  # the overlay is in the recording
        assert list((tmp_path / "data" / "clips").glob("*.mp4")), "the clip lives in the app's data folder"

        webrtc.get_by_role("button", name="START").click()
        expect(page.get_by_text("ms/frame")).to_be_visible(timeout=STEP_MS)
        assert_no_exception(page)
        again, _ = _readout(page, at_least=1)
        assert again < last_frames, (again, last_frames)  # counted per stream, not carried over
        webrtc.get_by_role("button", name="STOP").click()
        expect(page.get_by_text("Stopped")).to_be_visible(timeout=STEP_MS)
        assert_no_exception(page)
        page.screenshot(path=str(tmp_path / "webcam-after-use.png"), full_page=True)
    finally:
        browser.close()
