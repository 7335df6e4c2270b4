"""What the webcam page hands to streamlit-webrtc: ICE servers, the per-stream processor, the clip recorder."""
from __future__ import annotations

import json
import os

import av
import cv2
from aiortc import MediaStreamTrack
from aiortc.contrib.media import MediaRecorder
from streamlit_webrtc import VideoProcessorBase

from core.clips import SessionClip
from core.export import faces_dataframe
from core.live import LiveProcessor, LiveSettings, LiveSnapshot
from core.pipeline import FacePipeline


def rtc_configuration() -> dict:
    """ICE servers for WebRTC: none by default (no external STUN is contacted; fine on a LAN or
    localhost). Deployments behind NAT set FKS_ICE_SERVERS to a JSON list, e.g.
    '[{"urls": ["stun:stun.example.org:3478"]}]' or a TURN server with username/credential."""
    raw = os.environ.get("FKS_ICE_SERVERS", "").strip()
    servers = json.loads(raw) if raw else []
    if not isinstance(servers, list):
        raise ValueError("FKS_ICE_SERVERS must be a JSON list of RTCIceServer objects")
    return {"iceServers": servers}


class _Processed:
    """Carried by every frame StreamProcessor returns (`VideoFrame.opaque`): streamlit-webrtc's async
    track passes the camera's own frame on while the processor has not answered yet (a stream's first
    frames), and a clip must never contain one. One instance per frame: PyAV files an opaque value
    under its id and forgets it when any frame holding it is freed."""


def mark_processed(frame: av.VideoFrame) -> av.VideoFrame:
    frame.opaque = _Processed()
    return frame


def is_processed(frame: av.VideoFrame) -> bool:
    """A frame StreamProcessor made (effect drawn, mirrored as chosen), not one the camera sent."""
    return isinstance(frame.opaque, _Processed)


class StreamProcessor(VideoProcessorBase):
    """One per stream (streamlit-webrtc calls the factory at every START): counts restart per stream,
    and the detection thread and process stop when the stream ends."""

    def __init__(self, pipeline: FacePipeline, settings: LiveSettings):
        self.live = LiveProcessor(pipeline, settings)

    def recv(self, frame: av.VideoFrame) -> av.VideoFrame:
        out = self.live.process(frame.to_ndarray(format="bgr24"))
        return mark_processed(av.VideoFrame.from_ndarray(out, format="bgr24"))

    def on_ended(self) -> None:
        self.live.close()


#: MediaRecorder's video stream runs at this rate (its time base is 1/30 s).
RECORDER_FPS = 30


class _ProcessedFramePerTick(MediaStreamTrack):
    """Passes on processed frames (is_processed) whose time, in the recorder's 1/30 s ticks, is later
    than the last one's.

    WebRTC frames carry 90 kHz timestamps at an irregular rate; two within one tick would get the
    same timestamp in the file, and the MP4 muxer refuses the second (EINVAL) and loses the clip.
    """

    kind = "video"

    def __init__(self, track: MediaStreamTrack):
        super().__init__()
        self._track = track
        self._last_tick: int | None = None

    async def recv(self) -> av.VideoFrame:
        while True:
            frame = await self._track.recv()
            if not is_processed(frame):
                continue
            if frame.pts is None or frame.time_base is None:
                return frame
            tick = round(frame.pts * frame.time_base * RECORDER_FPS)
            if self._last_tick is None or tick > self._last_tick:
                self._last_tick = tick
                return frame


class ClipRecorder(MediaRecorder):
    """aiortc's MediaRecorder writing a session's clip (MP4, H.264); the clip is offered once the file is closed."""

    def __init__(self, clip: SessionClip):
        super().__init__(str(clip.start_recording()), format="mp4")
        self._clip = clip

    def addTrack(self, track: MediaStreamTrack) -> None:
        super().addTrack(_ProcessedFramePerTick(track) if track.kind == "video" else track)

    async def stop(self) -> None:
        try:
            await super().stop()
        except Exception:
            self._clip.abandon_recording()  # a file the muxer could not finish is no clip to offer
            raise
        self._clip.finish_recording()


def snapshot_files(snapshot: LiveSnapshot) -> tuple[bytes, str]:
    """The snapshot's frame as PNG bytes and its faces' keypoints as CSV text (image pixels)."""
    ok, png = cv2.imencode(".png", snapshot.frame_bgr)
    if not ok:
        raise ValueError("could not encode the frame as PNG")
    return png.tobytes(), faces_dataframe(snapshot.faces).to_csv(index=False)
