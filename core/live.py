"""Real-time face effects for video frames (the webcam page's engine; no Streamlit here).

Per frame, on a 2-core CPU (bench/bench_live.py):
- the Haar detector runs only every `detect_every` frames, on a copy scaled to `detect_width`;
- between detections each face is *tracked by its own keypoints*: the next crop is the one that puts
  the last smoothed keypoints where the model's mean training shape sits (core.geometry), so no
  separate tracker is needed and the crops look like the training crops;
- all faces go through the model in one ONNX Runtime call;
- keypoints are smoothed per face with a One Euro filter; a face not re-detected for `grace_s` is dropped.

`LiveProcessor.process` is called from streamlit-webrtc's worker thread; settings arrive through
`update()` and statistics leave through `stats()`, both under one lock.
"""
from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from core.detector import DetectorSettings
from core.geometry import CropTransform, box_iou, crop_around_points, crop_from_box
from core.pipeline import Face, FacePipeline, render
from core.smoothing import OneEuroFilter


#: One Euro parameters, chosen on the recorded video (shipped model): on a still face with camera
#: noise the nose tip's jitter drops from 0.61 px to 0.05 px for every setting tried; during head
#: motion the smoothed point trails the raw one by 0.77 px on average with these, 1.15 px with (1.0, 0.05).
SMOOTHING_MIN_CUTOFF_HZ = 0.2
SMOOTHING_BETA = 0.3


@dataclass(frozen=True)
class LiveSettings:
    effect: str = "sunglasses"
    mirror: bool = True
    detect_every: int = 5
    detect_width: int = 320
    grace_s: float = 0.5
    smoothing: bool = True


@dataclass
class _Track:
    box_xywh: np.ndarray
    crop: CropTransform
    filter: OneEuroFilter
    last_confirmed: float
    keypoints_px: np.ndarray | None = None


@dataclass
class LiveStats:
    frames: int = 0
    frames_with_face: int = 0
    overlays_drawn: int = 0
    ms_per_frame: float = 0.0  # exponential moving average
    fps: float = 0.0
    faces: int = 0
    last_frame_time: float = field(default=0.0, repr=False)


class LiveProcessor:
    """Stateful per-stream processor: frames in (BGR), frames out with the chosen effect."""

    def __init__(self, pipeline: FacePipeline, settings: LiveSettings | None = None, stats_file: str | None = None):
        self.pipeline = pipeline
        self._settings = settings or LiveSettings()
        self._lock = threading.Lock()
        self._stats = LiveStats()
        self._tracks: list[_Track] = []
        self._frame_index = 0
        self._mean_shape = pipeline.mean_shape
        self._stats_file = Path(stats_file) if stats_file else (
            Path(os.environ["FKS_LIVE_STATS_FILE"]) if os.environ.get("FKS_LIVE_STATS_FILE") else None)

    # -- thread-safe settings and statistics ------------------------------------------------------
    def update(self, **changes) -> None:
        with self._lock:
            self._settings = replace(self._settings, **changes)

    @property
    def settings(self) -> LiveSettings:
        with self._lock:
            return self._settings

    def stats(self) -> LiveStats:
        with self._lock:
            return replace(self._stats)

    def tracked_keypoints(self) -> list[np.ndarray]:
        """The last (smoothed) keypoints of every tracked face, image pixels."""
        return [t.keypoints_px for t in self._tracks if t.keypoints_px is not None]

    # -- the per-frame work -----------------------------------------------------------------------
    def process(self, frame_bgr: np.ndarray, now: float | None = None) -> np.ndarray:
        started = time.perf_counter()
        now = time.monotonic() if now is None else now
        s = self.settings
        if s.mirror:
            frame_bgr = cv2.flip(frame_bgr, 1)
        gray = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
        if self._frame_index % max(s.detect_every, 1) == 0 or not self._tracks:
            self._detect(gray, now, s)
        self._frame_index += 1
        self._tracks = [t for t in self._tracks if now - t.last_confirmed <= s.grace_s]
        faces = self._predict(gray, now, s)
        out = render(frame_bgr, faces, s.effect) if faces and s.effect != "none" else frame_bgr
        self._record(started, now, len(faces), drawn=bool(faces) and s.effect != "none")
        return out

    def _detect(self, gray: np.ndarray, now: float, s: LiveSettings) -> None:
        settings = DetectorSettings(scale_factor=1.2, min_neighbors=5, min_size_fraction=0.12, max_side=s.detect_width)
        boxes = self.pipeline.detect(gray, settings).boxes_xywh  # detection frames only: the verifier runs here
        unmatched = list(range(len(boxes)))
        for track in self._tracks:
            region = np.array([track.crop.left, track.crop.top, track.crop.side, track.crop.side])
            scores = [(box_iou(region, boxes[i]), i) for i in unmatched]
            if scores and max(scores)[0] > 0.3:
                i = max(scores)[1]
                unmatched.remove(i)
                track.box_xywh, track.last_confirmed = boxes[i].astype(float), now
                if self._mean_shape is None:  # no mean shape to track with: follow the detector
                    track.crop = crop_from_box(boxes[i])
        new_boxes = boxes[unmatched].astype(float)
        for box, crop in zip(new_boxes, self.pipeline.crops_for_boxes(gray, new_boxes)):  # re-centred like photos
            self._tracks.append(_Track(box, crop, OneEuroFilter(SMOOTHING_MIN_CUTOFF_HZ, SMOOTHING_BETA), now))

    def _predict(self, gray: np.ndarray, now: float, s: LiveSettings) -> list[Face]:
        if not self._tracks:
            return []
        keypoints = self.pipeline.keypoints_in_crops(gray, [t.crop for t in self._tracks])  # one batch for all faces
        faces = []
        for track, k in zip(self._tracks, keypoints):
            smoothed = track.filter(k.reshape(-1), now).reshape(k.shape) if s.smoothing else k
            track.keypoints_px = smoothed
            faces.append(Face(track.box_xywh, smoothed, track.crop))
            if self._mean_shape is not None:
                track.crop = crop_around_points(smoothed, self._mean_shape)
        return faces

    def _record(self, started: float, now: float, n_faces: int, drawn: bool) -> None:
        ms = (time.perf_counter() - started) * 1000
        with self._lock:
            st = self._stats
            st.frames += 1
            st.frames_with_face += n_faces > 0
            st.overlays_drawn += drawn
            st.faces = n_faces
            st.ms_per_frame = ms if st.frames == 1 else 0.9 * st.ms_per_frame + 0.1 * ms
            if st.last_frame_time and now > st.last_frame_time:
                inst = 1.0 / (now - st.last_frame_time)
                st.fps = inst if st.fps == 0 else 0.9 * st.fps + 0.1 * inst
            st.last_frame_time = now
            snapshot = replace(st) if self._stats_file and st.frames % 15 == 0 else None
        if snapshot is not None:
            tmp = self._stats_file.with_name(self._stats_file.name + ".tmp")
            tmp.write_text(json.dumps({k: v for k, v in snapshot.__dict__.items() if k != "last_frame_time"}))
            os.replace(tmp, self._stats_file)


def rtc_configuration() -> dict:
    """ICE servers for WebRTC: none by default (no external STUN is contacted; fine on a LAN or
    localhost). Deployments behind NAT set FKS_ICE_SERVERS to a JSON list, e.g.
    '[{"urls": ["stun:stun.example.org:3478"]}]' or a TURN server with username/credential."""
    raw = os.environ.get("FKS_ICE_SERVERS", "").strip()
    servers = json.loads(raw) if raw else []
    if not isinstance(servers, list):
        raise ValueError("FKS_ICE_SERVERS must be a JSON list of RTCIceServer objects")
    return {"iceServers": servers}
