"""Webcam page in real Chromium: a fake camera fed from a .y4m, WebRTC over loopback only.

Server side: the page's LiveProcessor writes its counters to FKS_LIVE_STATS_FILE; the test asserts
frames were processed, faces found in most of them and the overlay drawn. Browser side: the
returned video plays.
"""
import json
import time

import cv2
import numpy as np
from playwright.sync_api import expect

from tests.conftest import REPO, SHARED_DATA, launch_chromium
from tests.helpers import video_frames, write_y4m

VIDEO = SHARED_DATA / "video" / "frontal_face_320x240.mp4"


def _fake_camera(tmp_path):
    """The real one-person video when ../shared is present, else a synthetic clip (no face to find)."""
    if VIDEO.is_file():
        return write_y4m(video_frames(VIDEO, limit=120), tmp_path / "camera.y4m"), True
    frames = []
    for i in range(60):
        f = np.full((480, 640, 3), 90, np.uint8)
        cv2.circle(f, (200 + 3 * i, 240), 60, (200, 180, 160), -1)
        frames.append(f)
    return write_y4m(frames, tmp_path / "camera.y4m"), False


def _read_stats(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def test_live_sunglasses_over_webrtc(streamlit_app, playwright_driver, tmp_path):
    camera, has_face = _fake_camera(tmp_path)
    stats_file = tmp_path / "live_stats.json"
    server = streamlit_app(FKS_LIVE_STATS_FILE=str(stats_file), PYTHONPATH=str(REPO / "tests" / "loopback_ice"))
    browser = launch_chromium(playwright_driver, [f"--use-file-for-fake-video-capture={camera}"])
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(server.url + "/webcam")
        expect(page.get_by_role("heading", name="Webcam")).to_be_visible()
        frame = page.frame_locator('iframe[title*="webrtc_streamer"]')
        frame.get_by_role("button", name="START").click()
        deadline = time.time() + 60
        stats = {}
        while time.time() < deadline:
            stats = _read_stats(stats_file)
            if stats.get("frames", 0) >= 90:
                break
            time.sleep(0.5)
        assert stats.get("frames", 0) >= 90, f"too few frames processed: {stats}\n{server.log()}"
        if has_face:
            assert stats["frames_with_face"] / stats["frames"] > 0.7, stats
            assert stats["overlays_drawn"] > 0.7 * stats["frames"], stats
        video = frame.locator("video")
        expect(video).to_be_visible()
        playing = video.evaluate("v => new Promise(r => { const t0 = v.currentTime; "
                                 "setTimeout(() => r({advanced: v.currentTime > t0, width: v.videoWidth, "
                                 "paused: v.paused}), 1500); })")
        assert playing["advanced"] and playing["width"] > 0 and not playing["paused"], playing
        expect(page.get_by_text("ms/frame")).to_be_visible()
        frame.get_by_role("button", name="STOP").click()
    finally:
        browser.close()
