"""Webcam page in real Chromium: a fake camera fed from a .y4m, WebRTC over loopback only.

Used like a person: turn on recording, START with pixelate, STOP, download the clip; START with
sunglasses, STOP, download the second clip; turn recording off, START, change the effect, take a
snapshot and download it, STOP. Every frame of each clip, the first included, must carry its
effect. After every step the page must show no Streamlit exception; server-side figures are read
from the page's own readout. The page has a `run_every` fragment, so instead of waiting for an idle
app each step waits for the element it expects.
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
from tests.conftest import SHARED_DATA
from tests.e2e import assert_no_exception, choose, screenshot, settle, webcam_page
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


def _readout(page: Page, at_least: int, timeout_s: float = 90, server_log=lambda: "") -> tuple[int, int]:
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
                         f"readout {page.get_by_test_id('stMetric').all_inner_texts()}; server log:\n{server_log()}")


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


#: The part of a 640x480 camera frame that the face of the shared video covers in every frame
#: (x, y, w, h), mirrored or not.
FACE_REGION = (148, 95, 220, 260)
#: Eye band of the mirrored face (the median detector box's 20-50% height, 15-85% width).
EYE_BAND = (204, 172, 230, 98)


def _gray_region(frame_bgr: np.ndarray, region: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = region
    frame = cv2.resize(frame_bgr, (640, 480), interpolation=cv2.INTER_AREA)  # Chromium may send less
    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)[y:y + h, x:x + w].astype(np.int16)


def _nearest_raw_distance(frame_bgr: np.ndarray, raw_faces: list[np.ndarray]) -> float:
    """Mean grey-level difference, in the face region, to the closest camera frame (mirrored or not):
    about 2 for a frame that passes the face through (H.264 noise), about 20 for a pixelated one."""
    face = _gray_region(frame_bgr, FACE_REGION)
    return min(float(np.abs(face - raw).mean()) for raw in raw_faces)


def _dark_on_eyes(frame_bgr: np.ndarray) -> float:
    """Share of near-black pixels on the eyes: about 0.2 with sunglasses drawn, under 0.06 without."""
    return float((_gray_region(frame_bgr, EYE_BAND) < 40).mean())


def _clip_frames(page: Page, path: Path, previous: str | None = None) -> tuple[list[np.ndarray], str]:
    """The clip on offer once it is a new one (its "Recorded at" caption differs from `previous`):
    decoded frames and the caption."""
    caption = page.get_by_text("Recorded at")
    deadline = time.monotonic() + 2 * STEP_MS / 1000  # the recorder closes its file after STOP; on a busy
    while not (caption.count() and caption.first.inner_text() != previous):  # machine that has taken over 30 s
        if time.monotonic() > deadline:
            page.screenshot(path=str(path.with_suffix(".png")), full_page=True)
            raise AssertionError(f"no new clip to download; the clip column says: "
                                 f"{page.get_by_text('clip', exact=False).all_inner_texts()}")
        page.wait_for_timeout(500)
    assert_no_exception(page)
    shown = caption.first.inner_text()
    path.write_bytes(_download(page, "Download the clip (MP4)"))
    frames = video_frames(path, size=None, limit=100_000)
    assert len(frames) >= 30 and frames[0].shape[1] >= 320, (len(frames), frames[0].shape if frames else None)
    return frames, shown


def _record_one(page: Page, webrtc, server, at_least: int = 60) -> int:
    """START, wait for `at_least` frames, STOP; the frames of that stream."""
    webrtc.get_by_role("button", name="START").click()
    expect(page.get_by_text("ms/frame")).to_be_visible(timeout=STEP_MS)
    expect(page.get_by_text("Recording… press STOP to finish the clip.")).to_be_visible(timeout=STEP_MS)
    assert_no_exception(page)
    frames, _ = _readout(page, at_least=at_least, server_log=server.log)
    webrtc.get_by_role("button", name="STOP").click()
    expect(page.get_by_text("Stopped")).to_be_visible(timeout=STEP_MS)
    assert_no_exception(page)
    return frames


def _download(page: Page, button: str) -> bytes:
    with page.expect_download() as info:
        page.get_by_role("button", name=button).click()
    return open(info.value.path(), "rb").read()


def test_webcam_start_effect_snapshot_stop_clip_and_start_again(streamlit_app, playwright_driver, tmp_path,
                                                                 shared_data):
    camera, source_frames = _fake_camera(tmp_path)
    assert max(_marker_pixels(f).sum() for f in source_frames) < 20  # the camera itself shows no green dots
    raw_faces = [_gray_region(g, FACE_REGION) for f in source_frames for g in (f, cv2.flip(f, 1))]
    assert max(_nearest_raw_distance(cv2.flip(f, 1), raw_faces) for f in source_frames[::10]) < 1
    assert max(_dark_on_eyes(cv2.flip(f, 1)) for f in source_frames) < 0.08
    with webcam_page(streamlit_app, playwright_driver, camera, tmp_path / "data", STEP_MS) as (page, server):
        expect(page.get_by_text("Not started")).to_be_visible(timeout=STEP_MS)
        webrtc = page.frame_locator('iframe[title*="webrtc_streamer"]')

        # Clip 1: pixelate hides the face on every frame, from the first one
        page.get_by_test_id("stCheckbox").filter(has_text="Record a clip").click()
        settle(page)
        choose(page, "Effect", "pixelate")
        _record_one(page, webrtc, server)
        first, first_caption = _clip_frames(page, tmp_path / "clip-pixelate.mp4")
        distances = [_nearest_raw_distance(f, raw_faces) for f in first]
        shown = [i for i, d in enumerate(distances) if d < 8]
        assert not shown, f"{len(shown)} of {len(first)} clip frames show the face (first: {shown[:10]})"
        assert list((tmp_path / "data" / "clips").glob("*.mp4")), "the clip lives in the app's data folder"

        # Clip 2 in the same session: sunglasses on every frame; the page offers the new clip
        choose(page, "Effect", "sunglasses")
        expect(page.get_by_role("button", name="Download the clip (MP4)")).to_be_visible()  # kept while recording
        _record_one(page, webrtc, server)
        linux = Path("/proc/self/stat").is_file()
        if linux:  # the stream's detection process ended with it
            assert _wait_for_detection_processes(server.proc.pid, 0) == []
        second, _ = _clip_frames(page, tmp_path / "clip-sunglasses.mp4", previous=first_caption)
        dark = [_dark_on_eyes(f) for f in second]
        bare = [i for i, d in enumerate(dark) if d < 0.12]
        assert not bare, f"{len(bare)} of {len(second)} clip frames without sunglasses (first: {bare[:10]})"
        assert len(list((tmp_path / "data" / "clips").glob("*.mp4"))) == 1, "one clip per session: the newest"

        # Without recording: the live stream, an effect change, a snapshot, figures per stream
        page.get_by_test_id("stCheckbox").filter(has_text="Record a clip").click()
        settle(page)
        webrtc.get_by_role("button", name="START").click()
        expect(page.get_by_text("ms/frame")).to_be_visible(timeout=STEP_MS)
        assert_no_exception(page)
        frames, with_face = _readout(page, at_least=60, server_log=server.log)
        assert with_face / frames > 0.7, (frames, with_face)
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
        screenshot(page, str(tmp_path / "webcam-live.png"))
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

        webrtc.get_by_role("button", name="STOP").click()
        expect(page.get_by_text("Stopped")).to_be_visible(timeout=STEP_MS)
        expect(page.get_by_text("ms/frame")).to_have_count(0, timeout=STEP_MS)  # no stale figures after STOP
        assert_no_exception(page)
        if linux:  # ...and ends with it
            assert _wait_for_detection_processes(server.proc.pid, 0) == []

        webrtc.get_by_role("button", name="START").click()
        expect(page.get_by_text("ms/frame")).to_be_visible(timeout=STEP_MS)
        assert_no_exception(page)
        again, _ = _readout(page, at_least=1)
        assert again < frames, (again, frames)  # counted per stream, not carried over
        webrtc.get_by_role("button", name="STOP").click()
        expect(page.get_by_text("Stopped")).to_be_visible(timeout=STEP_MS)
        assert_no_exception(page)
        expect(page.get_by_role("button", name="Download the clip (MP4)")).to_be_visible()  # still offered
        screenshot(page, str(tmp_path / "webcam-after-use.png"))
