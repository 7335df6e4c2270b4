"""The webcam page's clip recorder without a browser: WebRTC-like timestamps in, a decodable MP4 out."""
# streamlit_webrtc before anything that may import TensorFlow (see tests/conftest.py).
import streamlit_webrtc  # noqa: F401  isort: skip

import asyncio
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import av
import cv2
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from core.clips import SessionClip
from pages.ui.live import ClipRecorder, mark_processed
from tests.helpers import video_frames


class IrregularCamera(MediaStreamTrack):
    """Frames stamped on a 90 kHz clock at an irregular rate (and sent at it), some closer together than 1/30 s; the
    first `raw` ones are the camera's own (red, as streamlit-webrtc passes them on before the processor
    answers), the rest processed (green)."""

    kind = "video"

    def __init__(self, count: int, raw: int = 0, start_pts: int = 123_456):
        super().__init__()
        self.gaps = np.random.default_rng(0).integers(600, 6000, count)  # 7-67 ms
        self.sent, self.pts, self.raw = 0, start_pts, raw

    async def recv(self) -> av.VideoFrame:
        if self.sent == len(self.gaps):
            self.stop()
            raise MediaStreamError
        await asyncio.sleep(float(self.gaps[self.sent]) / 90_000)  # in real time, as a camera sends them
        image = np.full((120, 160, 3), 40, np.uint8)
        processed = self.sent >= self.raw
        cv2.circle(image, (20 + self.sent, 60), 10, (0, 255, 0) if processed else (0, 0, 255), -1)
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        if processed:
            mark_processed(frame)
        self.pts += int(self.gaps[self.sent])
        frame.pts, frame.time_base = self.pts, Fraction(1, 90_000)
        self.sent += 1
        return frame


def _record(clip: SessionClip, camera: IrregularCamera) -> None:
    """What streamlit-webrtc does from START to STOP with the page's recorder, in a loop of its own
    (Playwright's may be running in this thread)."""

    async def record():
        recorder = ClipRecorder(clip)
        recorder.addTrack(camera)
        await recorder.start()
        for _ in range(1000):  # up to 10 s for the recorder to read every frame
            if camera.readyState != "live":
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        await recorder.stop()

    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, record()).result()


def test_irregular_webrtc_timestamps_still_make_a_clip(tmp_path):
    clip = SessionClip(tmp_path)
    _record(clip, IrregularCamera(90))
    assert clip.ready and not clip.recording
    decoded = video_frames(clip.path, size=None)
    assert 40 <= len(decoded) <= 90 and decoded[0].shape == (120, 160, 3)
    assert decoded[-1][60, 20 + 89 - 5:20 + 89 + 5, 1].max() > 200  # the last frames made it into the file


def _red_and_green(frame_bgr: np.ndarray) -> tuple[int, int]:
    b, g, r = (frame_bgr[..., i].astype(int) for i in range(3))
    return int(((r > 150) & (g < 100)).sum()), int(((g > 150) & (r < 100)).sum())


def test_a_clip_holds_processed_frames_only_and_a_second_clip_replaces_the_first(tmp_path):
    clip = SessionClip(tmp_path)
    _record(clip, IrregularCamera(60, raw=12))
    first = video_frames(clip.path, size=None)
    assert len(first) >= 20
    for i, frame in enumerate(first):  # the first frame of the file included
        red, green = _red_and_green(frame)
        assert red == 0 and green > 100, (i, red, green)
    first_bytes = clip.path.read_bytes()
    # The second stream of a session: a new peer connection, its own clock
    _record(clip, IrregularCamera(60, raw=5, start_pts=7_000))
    assert clip.ready and not clip.recording and clip.path.read_bytes() != first_bytes
    second = video_frames(clip.path, size=None)
    assert len(second) >= 20 and all(_red_and_green(f)[0] == 0 for f in second)
    assert [p.name for p in tmp_path.iterdir()] == [clip.path.name]


def test_a_stream_stopped_before_its_first_processed_frame_keeps_the_last_clip(tmp_path):
    clip = SessionClip(tmp_path)
    _record(clip, IrregularCamera(30))
    kept = clip.path.read_bytes()
    try:
        _record(clip, IrregularCamera(10, raw=10))  # nothing processed: nothing to write
    except Exception:  # the muxer may refuse an empty file; the page logs it
        pass
    assert clip.ready and not clip.recording and clip.path.read_bytes() == kept
    assert not list(tmp_path.glob("*.part.mp4"))
