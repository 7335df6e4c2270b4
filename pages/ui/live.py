"""What the webcam page hands to streamlit-webrtc: ICE servers, the per-stream processor, the clip recorder."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import queue
import threading
from fractions import Fraction
from pathlib import Path

import av
import cv2
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av.video.reformatter import VideoReformatter
from streamlit_webrtc import VideoProcessorBase

from core.clips import SessionClip
from core.export import faces_dataframe
from core.live import LiveProcessor, LiveSettings, LiveSnapshot
from core.pipeline import FacePipeline

_log = logging.getLogger(__name__)


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


#: A clip's time base is 1/RECORDER_FPS s: at most one frame per tick.
RECORDER_FPS = 30
_TICK = Fraction(1, RECORDER_FPS)
#: libx264 settings of a clip: cheap enough to encode beside the live stream on a busy CPU.
X264_OPTIONS = {"preset": "ultrafast", "tune": "zerolatency"}


def _tick(frame: av.VideoFrame) -> int | None:
    """The frame's time in clip ticks (None when WebRTC gave it no timestamp)."""
    if frame.pts is None or frame.time_base is None:
        return None
    return round(frame.pts * frame.time_base * RECORDER_FPS)


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
            tick = _tick(frame)
            if tick is None:
                return frame
            if self._last_tick is None or tick > self._last_tick:
                self._last_tick = tick
                return frame


class ClipRecorder:
    """Records a stream's processed frames into the session's clip (MP4, H.264); the clip is offered once
    the file is closed.

    streamlit-webrtc calls addTrack, start and stop on the stream's asyncio loop, which also answers ICE
    consent checks and moves every RTP packet. aiortc's MediaRecorder encodes on that loop; under load one
    encode outlasts the checks and the stream ends. Here the loop only hands frames to a queue and a
    thread encodes them; when the thread falls behind, frames are left out of the clip, never the stream."""

    def __init__(self, clip: SessionClip, queued_frames: int = 60):
        self._clip = clip
        self._path: Path | None = None  # the file of this recording, from start() on
        self._track: MediaStreamTrack | None = None
        # (tick, frame): the tick is read on the loop, as the frame arrives. streamlit-webrtc hands the same
        # frame object on again, restamped, when the processor is slower than the camera.
        self._frames: queue.Queue[tuple[int | None, av.VideoFrame]] = queue.Queue(maxsize=queued_frames)
        self._stopping = threading.Event()
        self._reader: asyncio.Future | None = None
        self._writer: threading.Thread | None = None
        self._written = 0
        self._error: Exception | None = None

    def addTrack(self, track: MediaStreamTrack) -> None:  # noqa: N802  (MediaRecorder's interface)
        if track.kind == "video":
            self._track = _ProcessedFramePerTick(track)

    async def start(self) -> None:
        if self._track is None:
            return
        self._path = self._clip.start_recording()
        self._writer = threading.Thread(target=self._write, args=(self._path,), name="clip-writer", daemon=True)
        self._writer.start()
        self._reader = asyncio.ensure_future(self._read(self._track))
        self._reader.add_done_callback(lambda _: self._stopping.set())  # the track ended, or reading failed

    async def _read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                with contextlib.suppress(queue.Full):  # the writer is behind: this frame stays out of the clip
                    self._frames.put_nowait((_tick(frame), frame))

    def _write(self, path: Path) -> None:
        """Encode queued frames until stop, each at its 1/30 s tick from the first frame's."""
        try:
            with av.open(str(path), mode="w", format="mp4") as container:
                stream = None
                first_tick: int | None = None
                last_pts = -1
                reformatter = VideoReformatter()
                while not (self._stopping.is_set() and self._frames.empty()):
                    try:
                        tick, frame = self._frames.get(timeout=0.1)
                    except queue.Empty:
                        continue
                    if stream is None:  # sized by the first frame; Chromium may send smaller ones under load
                        stream = container.add_stream("libx264", rate=RECORDER_FPS, options=X264_OPTIONS)
                        stream.width, stream.height = frame.width - frame.width % 2, frame.height - frame.height % 2
                        stream.pix_fmt = "yuv420p"
                    first_tick = tick if first_tick is None else first_tick
                    pts = max(last_pts + 1, tick - first_tick if tick is not None and first_tick is not None else 0)
                    # The relay hands this very frame to the browser's encoder too, on another thread; a frame's
                    # own reformat() keeps one scaler per frame, and two threads in it deadlock: use ours.
                    out = reformatter.reformat(frame, width=stream.width, height=stream.height, format="yuv420p")
                    if out is frame:  # already the clip's size and format: stamp a copy, not the shared frame
                        out = av.VideoFrame.from_ndarray(frame.to_ndarray(), format="yuv420p")
                    out.pts, out.time_base, last_pts = pts, _TICK, pts
                    container.mux(stream.encode(out))
                    self._written += 1
                if stream is not None:
                    container.mux(stream.encode(None))
        except Exception as exc:  # noqa: BLE001  (stop says so and keeps the last clip)
            self._error = exc

    async def stop(self) -> None:
        """Finish the file (off the loop) and offer it; a recording that failed or wrote nothing is dropped."""
        try:
            if self._reader is not None:
                await asyncio.wait({self._reader}, timeout=0.5)  # frames already on their way still count
                self._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._reader
        finally:
            self._stopping.set()
        if self._writer is None or self._path is None:
            return
        while self._writer.is_alive():  # polled, not joined in an executor: the server's default executor
            await asyncio.sleep(0.05)    # may be busy with Streamlit's own work
        if self._error is not None or self._written == 0:
            if self._error is not None:
                _log.warning("clip recording failed; the last clip stays", exc_info=self._error)
            self._clip.abandon_recording(self._path)
            return
        self._clip.finish_recording(self._path)


def snapshot_files(snapshot: LiveSnapshot) -> tuple[bytes, str]:
    """The snapshot's frame as PNG bytes and its faces' keypoints as CSV text (image pixels)."""
    ok, png = cv2.imencode(".png", snapshot.frame_bgr)
    if not ok:
        raise ValueError("could not encode the frame as PNG")
    return png.tobytes(), faces_dataframe(snapshot.faces).to_csv(index=False)
