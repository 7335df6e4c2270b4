"""What the webcam page hands to streamlit-webrtc: ICE servers, the per-stream processor, the clip recorder."""
from __future__ import annotations

import json
import os

import av
import cv2
from aiortc.contrib.media import MediaRecorder
from streamlit_webrtc import VideoProcessorBase

from core.clips import SessionClip
from core.export import faces_csv
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


class StreamProcessor(VideoProcessorBase):
    """One per stream (streamlit-webrtc calls the factory at every START): counts restart per stream,
    and the detection thread stops when the stream ends."""

    def __init__(self, pipeline: FacePipeline, settings: LiveSettings):
        self.live = LiveProcessor(pipeline, settings)

    def recv(self, frame: av.VideoFrame) -> av.VideoFrame:
        out = self.live.process(frame.to_ndarray(format="bgr24"))
        return av.VideoFrame.from_ndarray(out, format="bgr24")

    def on_ended(self) -> None:
        self.live.close()


class ClipRecorder(MediaRecorder):
    """aiortc's MediaRecorder writing a session's clip (MP4, H.264); the clip is offered once the file is closed."""

    def __init__(self, clip: SessionClip):
        super().__init__(str(clip.start_recording()), format="mp4")
        self._clip = clip

    async def stop(self) -> None:
        await super().stop()
        self._clip.finish_recording()


def snapshot_files(snapshot: LiveSnapshot) -> tuple[bytes, str]:
    """The snapshot's frame as PNG bytes and its faces' keypoints as CSV text (image pixels)."""
    ok, png = cv2.imencode(".png", snapshot.frame_bgr)
    if not ok:
        raise ValueError("could not encode the frame as PNG")
    return png.tobytes(), faces_csv(snapshot.faces)
