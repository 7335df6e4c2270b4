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
from pages.ui.live import ClipRecorder
from tests.helpers import video_frames


class IrregularCamera(MediaStreamTrack):
    """Frames stamped on a 90 kHz clock at an irregular rate, some closer together than 1/30 s."""

    kind = "video"

    def __init__(self, count: int):
        super().__init__()
        self.gaps = np.random.default_rng(0).integers(600, 6000, count)  # 7-67 ms
        self.sent, self.pts = 0, 123_456

    async def recv(self) -> av.VideoFrame:
        if self.sent == len(self.gaps):
            self.stop()
            raise MediaStreamError
        await asyncio.sleep(0)
        image = np.full((120, 160, 3), 40, np.uint8)
        cv2.circle(image, (20 + self.sent, 60), 10, (0, 255, 0), -1)
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        self.pts += int(self.gaps[self.sent])
        frame.pts, frame.time_base = self.pts, Fraction(1, 90_000)
        self.sent += 1
        return frame


def test_irregular_webrtc_timestamps_still_make_a_clip(tmp_path):
    clip = SessionClip(tmp_path)

    async def record():
        recorder = ClipRecorder(clip)
        camera = IrregularCamera(90)
        recorder.addTrack(camera)
        await recorder.start()
        for _ in range(1000):  # up to 10 s for the recorder to read every frame
            if camera.readyState != "live":
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        await recorder.stop()

    with ThreadPoolExecutor(1) as thread:  # a loop of its own (Playwright's may be running in this thread)
        thread.submit(asyncio.run, record()).result()
    assert clip.ready and not clip.recording
    decoded = video_frames(clip.path, size=None)
    assert 40 <= len(decoded) <= 90 and decoded[0].shape == (120, 160, 3)
    assert decoded[-1][60, 20 + 89 - 5:20 + 89 + 5, 1].max() > 200  # the last frames made it into the file
