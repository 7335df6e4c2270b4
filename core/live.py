"""Real-time face effects for video frames (the webcam page's engine; no Streamlit here).

Per frame (bench/bench_live.py measures each path):
- faces are detected (the same detection step as photos: Haar cascade, then the face verifier, on a
  copy scaled to `detect_width`) every `detect_every` frames, on a background thread (DetectionWorker)
  fed the newest frame, so no frame after a stream's first waits for the Haar cascade; tracks are
  updated when it answers. The cascade itself runs in a niced child process (core.detector.DetectorProcess,
  `detection_process`), so its OpenCV threads cannot slow the frames drawn meanwhile;
  `background_detection=False` detects on the frame path instead (synchronous: what the tests use to make
  every frame's result deterministic, and the bench's baseline; a stream's first frame always does);
- between detections each face is *tracked by its own keypoints*: the next crop is the one that puts
  the last smoothed keypoints where the model's mean training shape sits (core.geometry), so no
  separate tracker is needed and the crops look like the training crops;
- all faces go through the model in one ONNX Runtime call, the int8 twin where the model card says it
  keeps the float twin's accuracy on validation people (FacePipeline.live_predictor);
- keypoints are smoothed per face with a One Euro filter; a face not re-detected for `grace_s` is
  dropped (with background detection: when a detector answer without it arrives, so a detector
  slowed down by a busy CPU does not drop faces it has not looked for).

One LiveProcessor serves one stream. `process` is called from streamlit-webrtc's worker thread;
settings arrive through `update()`, statistics and the last frame leave through `stats()` and
`snapshot()`, all under one lock. `close()` stops the detection thread and process.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np

from core.detector import DetectorProcess, DetectorProcessError
from core.geometry import CROP_MARGIN, CROP_SHIFT_DOWN, CropTransform, box_iou, crop_around_points, crop_from_box
from core.pipeline import Detections, Face, FacePipeline, render
from core.schema import FLIP_PERMUTATION
from core.smoothing import OneEuroFilter

#: One Euro parameters, chosen on the recorded video with the shipped model: steady on a still face with
#: camera noise, and the least lag behind the raw point during head motion of the settings tried
#: (bench/bench_live.py prints the jitter).
SMOOTHING_MIN_CUTOFF_HZ = 0.2
SMOOTHING_BETA = 0.3

#: A track's crop turns with the face once its keypoints' roll differs from the crop's by this much: the
#: int8 twin's keypoint noise on a still face turns a fitted crop by a fraction of a degree every frame.
ROLL_DEADBAND_DEG = 2.0
#: While a stream follows faces, the detection process searches turned copies on one detection frame in this many.
ROLL_EVERY = 3

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveSettings:
    effect: str = "sunglasses"
    mirror: bool = True
    detect_every: int = 5
    #: Detection runs on a copy no wider than this; the pipeline's detector settings do the rest.
    detect_width: int = 320
    grace_s: float = 0.5
    smoothing: bool = True
    background_detection: bool = True
    #: With background detection: run the cascade in a child process (False: on the detection thread).
    detection_process: bool = True
    #: Run the int8 twin where the model card approves it (FacePipeline.live_predictor); False: the float model.
    int8: bool = True


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


@dataclass(frozen=True)
class LiveSnapshot:
    """The last frame a stream sent back (effect drawn) and the faces drawn on it."""

    frame_bgr: np.ndarray
    faces: list[Face]


@dataclass(frozen=True)
class Detection:
    """A detector answer: boxes (x, y, w, h, and the face's roll in degrees when the detector searched turned
    copies) found on the frame submitted at `stamp`, and the face verifier's score of each crop handed in with
    that frame (the tracks' own crops; empty when none)."""

    boxes_xywh: np.ndarray
    stamp: float
    crop_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))


def _swap_sides(face: Face) -> Face:
    """The same points with left and right names exchanged (core.schema.FLIP_PERMUTATION); box, crop and angle
    as they were."""
    return replace(face, keypoints_px=face.keypoints_px[FLIP_PERMUTATION])


def _lower_this_threads_priority(niceness: int = 10) -> None:
    """Let the frame path win the 2 cores when both want them: detection can wait a few ms, a frame
    cannot. Linux schedules each thread on its own, so this nices only the calling thread; elsewhere
    it does nothing. Its gain on bench_live's p95 is within the run-to-run noise."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            me = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, me, min(os.getpriority(os.PRIO_PROCESS, me) + niceness, 19))


class DetectionWorker:
    """Runs `detect(gray)` on a daemon thread, always on the newest frame handed to it.

    `submit` replaces a frame still waiting (a slow detector skips frames rather than queueing
    them); `take_result` returns each answer once. An exception raised by `detect` is re-raised by
    the next `take_result`, on the caller's thread. A frame submitted with crops is handed over as
    `detect(gray, crops)`, which returns (boxes, a score per crop): checking that tracked faces are
    still faces costs the frame path nothing.
    """

    def __init__(self, detect: Callable[..., Any],
                 name: str = "face-detection"):
        self._detect = detect
        self._cond = threading.Condition()
        self._pending: tuple[np.ndarray, float, Sequence[CropTransform]] | None = None
        self._result: Detection | BaseException | None = None
        self._busy = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def idle(self) -> bool:
        """No frame waiting and none being detected."""
        with self._cond:
            return self._pending is None and not self._busy

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, gray: np.ndarray, stamp: float, crops: Sequence[CropTransform] = ()) -> None:
        """Detect on `gray` (not modified afterwards by the caller) as soon as the thread is free, and score
        `crops` of it; ignored once closed."""
        with self._cond:
            if self._closed:
                return
            self._pending = (gray, stamp, tuple(crops))
            self._cond.notify()

    def take_result(self) -> Detection | None:
        with self._cond:
            result, self._result = self._result, None
        if isinstance(result, BaseException):
            raise result
        return result

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Block until the thread has answered everything submitted (tests and the bench's warm-up)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending is None and not self._busy, timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the thread (after the detection in progress, if any); idempotent."""
        with self._cond:
            self._closed = True
            self._pending = None
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        _lower_this_threads_priority()
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._closed)
                if self._closed:
                    return
                pending, self._pending = self._pending, None
                assert pending is not None  # wait_for returned without closing
                gray, stamp, crops = pending
                self._busy = True
            try:
                if crops:
                    boxes, scores = self._detect(gray, crops)
                    result: Detection | BaseException = Detection(boxes, stamp, scores)
                else:
                    result = Detection(self._detect(gray), stamp)
            except Exception as exc:  # handed to the frame thread by take_result
                result = exc
            with self._cond:
                self._result = result
                self._busy = False
                self._cond.notify_all()


def _follow(crop: CropTransform, keypoints_px: np.ndarray, mean_shape: np.ndarray | list) -> CropTransform:
    """The next frame's crop: the last keypoints fitted onto the mean training face (scale, roll and shift),
    keeping the current roll while the fit's differs by less than ROLL_DEADBAND_DEG, so keypoint noise on a
    still face does not turn the crop (and the model's reading) back and forth every frame."""
    fit = crop_around_points(keypoints_px, np.asarray(mean_shape))
    if abs((fit.angle_deg - crop.angle_deg + 180) % 360 - 180) >= ROLL_DEADBAND_DEG:
        return fit
    held = replace(fit, angle_deg=crop.angle_deg)
    # moved so the keypoints' centroid still lands on the mean face's centroid, as in the fit
    shift = keypoints_px.reshape(-1, 2).mean(0) - held.to_image(np.asarray(mean_shape).reshape(-1, 2).mean(0))
    return replace(held, left=held.left + float(shift[0]), top=held.top + float(shift[1]))


def _with_angles(found: Detections) -> np.ndarray:
    """A detection step's boxes as (N, 5): x, y, w, h, angle_deg."""
    return np.hstack([np.asarray(found.boxes_xywh, dtype=np.float64).reshape(-1, 4),
                      np.asarray(found.angles_deg, dtype=np.float64).reshape(-1, 1)])


def box_of_crop(crop: CropTransform) -> np.ndarray:
    """The detector box (x, y, w, h, before any turn about its centre) whose crop (core.geometry.crop_from_box)
    is `crop`: a tracked face's box follows its keypoints, so blur and pixelation hide where the face is now."""
    side = crop.side / CROP_MARGIN
    down = np.deg2rad(crop.angle_deg)
    cx = crop.left + crop.side / 2 - CROP_SHIFT_DOWN * side * np.sin(down)
    cy = crop.top + crop.side / 2 - CROP_SHIFT_DOWN * side * np.cos(down)
    return np.array([cx - side / 2, cy - side / 2, side, side])


def _same_face(a: CropTransform, b: CropTransform) -> bool:
    """Two crops on one face: centres closer than a third of the larger side (whatever their tilt)."""
    ca = np.array([a.left + a.side / 2, a.top + a.side / 2])
    cb = np.array([b.left + b.side / 2, b.top + b.side / 2])
    return float(np.linalg.norm(ca - cb)) < max(a.side, b.side) / 3


class LiveProcessor:
    """Stateful per-stream processor: frames in (BGR), frames out with the chosen effect."""

    def __init__(self, pipeline: FacePipeline, settings: LiveSettings | None = None):
        self.pipeline = pipeline
        self._settings = settings or LiveSettings()
        self._lock = threading.Lock()
        self._stats = LiveStats()
        self._snapshot: LiveSnapshot | None = None
        self._tracks: list[_Track] = []
        self._frames_since_detection = 0
        self._mean_shape = pipeline.mean_shape
        self._worker: DetectionWorker | None = None
        self._detector_process: DetectorProcess | None = None
        self._closed = False
        #: The tracks whose crops went to the detection thread with the frame stamped `_checked_at`.
        self._checked: list[_Track] = []
        self._checked_at: float | None = None
        self._detections = 0

    # -- thread-safe settings, statistics and the last frame ---------------------------------------
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

    def snapshot(self) -> LiveSnapshot | None:
        """The last processed frame with its faces, or None before the first frame."""
        with self._lock:
            return self._snapshot

    def close(self) -> None:
        """End of the stream: stop the detection thread and process. Later frames detect on the frame path."""
        self._closed = True
        if self._worker is not None:
            self._worker.close()  # waits for a detection in progress, so the process is idle below
            self._worker = None
        if self._detector_process is not None:
            self._detector_process.close()
            self._detector_process = None

    # -- the per-frame work -----------------------------------------------------------------------
    def process(self, frame_bgr: np.ndarray, now: float | None = None) -> np.ndarray:
        started = time.perf_counter()
        now = time.monotonic() if now is None else now
        s = self.settings
        if s.mirror:
            frame_bgr = cv2.flip(frame_bgr, 1)
        gray = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
        due = self._frames_since_detection >= max(s.detect_every, 1) - 1 or not self._tracks
        # The stream's first frame is detected on the frame path: there is nothing to track yet.
        worker = self._detection_worker() if s.background_detection and self._stats.frames else None
        if worker is None:
            if due:
                checked = list(self._tracks)
                scores = self._score_crops(gray, [t.crop for t in checked])
                self._merge_detections(gray, self._detect(gray), seen_at=now, checked=checked, scores=scores)
                self._frames_since_detection = 0
            else:
                self._frames_since_detection += 1
            self._drop_unconfirmed(now, s)
        else:
            answer = worker.take_result()
            if answer is not None:  # in the detector's time: only an answer without a face is evidence it left
                checked = self._checked if self._checked_at == answer.stamp else []
                self._merge_detections(gray, answer.boxes_xywh, seen_at=answer.stamp, checked=checked,
                                       scores=answer.crop_scores if checked else None)
                self._drop_unconfirmed(answer.stamp, s)
            if due and worker.idle:
                # The tracks' crops go with the frame: the verifier checks them there, off the frame path.
                self._checked, self._checked_at = (list(self._tracks), now) if self.pipeline.verifier else ([], None)
                worker.submit(gray, now, [t.crop for t in self._checked])
                self._frames_since_detection = 0
            else:
                self._frames_since_detection += 1
        faces = self._predict(gray, now, s)
        # The model reads the mirror image as a face of its own, so its "left eye" is the person's right
        # one: named points (labels, snapshot CSV) swap left and right; artwork keeps the image's layout.
        named = [_swap_sides(f) for f in faces] if s.mirror else faces
        drawn = named if s.effect == "labelled keypoints" else faces
        out = render(frame_bgr, drawn, s.effect) if faces and s.effect != "none" else frame_bgr
        self._record(started, now, named, out, drawn=bool(faces) and s.effect != "none")
        return out

    def _detection_worker(self) -> DetectionWorker | None:
        if self._worker is None and not self._closed:
            # The thread holds only a weak reference, so a processor dropped without close() is
            # collected, and its finalizer stops the thread.
            processor = weakref.ref(self)

            def detect(gray: np.ndarray, crops: Sequence[CropTransform] = ()
                       ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
                owner = processor()
                if owner is None:
                    return np.zeros((0, 4), int) if not crops else (np.zeros((0, 4), int), np.zeros(len(crops)))
                boxes = owner._detect(gray, owner._detector_process)
                if not crops:
                    return boxes
                scores = owner._score_crops(gray, crops)
                return boxes, np.zeros(len(crops)) if scores is None else scores

            if self.settings.detection_process:
                try:
                    self._detector_process = DetectorProcess()
                    weakref.finalize(self, self._detector_process.close)
                except (OSError, ValueError) as exc:  # e.g. no pipes to hand over (pass_fds is POSIX-only)
                    log.warning("No face detection process (%s); this stream detects on its detection thread.", exc)
            self._worker = DetectionWorker(detect)
            weakref.finalize(self, self._worker.close)
        return self._worker

    def _detect(self, gray: np.ndarray, process: DetectorProcess | None = None) -> np.ndarray:
        """The pipeline's detection step (its detector settings, its search of turned copies) on a copy
        `detect_width` wide: boxes (x, y, w, h, angle_deg), one per face. The cascade runs in `process` when
        given and alive, else here; the verifier runs here, on detection frames only. Only the detection
        thread passes `process` (its pipe serves one caller at a time)."""
        settings = replace(self.pipeline.detector.settings, max_side=self.settings.detect_width)
        self._detections += 1
        # in the niced process, while faces are followed (each kept by its own crop), new ones are looked for on
        # turned copies on one detection frame in ROLL_EVERY: that search's work overlaps the frames drawn meanwhile
        roll = self.pipeline.roll
        turned = roll is not None and (not self._tracks or self._detections % ROLL_EVERY == 1)
        if process is not None:
            try:
                if process.alive:
                    if not turned or roll is None:
                        return _with_angles(self.pipeline.verify(gray, process.detect(gray, settings)))
                    # no second look there (the in-between windows keep the copies' scale step): with no verifier
                    # in the process to leave the faces found out (RollSearch.skip_found_faces), it would look
                    # around every weak box, on the frames' CPU
                    search = replace(roll, second_look_scale_factor=None)
                    candidates = process.detect(gray, settings, search)
                    return _with_angles(self.pipeline.verify_any_roll(gray, candidates))
                raise DetectorProcessError("the face detection process ended")
            except DetectorProcessError:
                log.warning("The face detection process ended; this stream detects on its detection thread from now on.")
                process.close()
                self._detector_process = None
        return _with_angles(self.pipeline.detect(gray, settings))

    def _score_crops(self, gray: np.ndarray, crops: Sequence[CropTransform]) -> np.ndarray | None:
        """The face verifier's score of each crop of `gray` (None without a verifier): a track whose own
        crop still looks like a face is kept, whether or not the cascade finds it at that tilt."""
        verifier = self.pipeline.verifier
        if verifier is None or not crops:
            return None if verifier is None else np.zeros(0)
        return verifier.score_crops(np.stack([c.extract(gray) for c in crops]))

    def _drop_unconfirmed(self, reference: float, s: LiveSettings) -> None:
        self._tracks = [t for t in self._tracks if reference - t.last_confirmed <= s.grace_s]

    def _merge_detections(self, gray: np.ndarray, boxes: np.ndarray, seen_at: float,
                          checked: Sequence[_Track] = (), scores: np.ndarray | None = None) -> None:
        """Confirm (as seen at `seen_at`) the `checked` tracks whose crop the verifier accepts (`scores`, one per
        track) and the tracks a box overlaps; start a track for every other box, unless a track already
        holds that face."""
        if scores is not None and self.pipeline.verifier is not None:
            for track, score in zip(checked, scores, strict=False):  # a stale answer may score fewer
                if score >= self.pipeline.verifier.threshold:
                    track.last_confirmed = max(track.last_confirmed, seen_at)
        boxes = np.asarray(boxes, dtype=np.float64)
        angles = boxes[:, 4] if boxes.ndim == 2 and boxes.shape[1] == 5 else np.zeros(len(boxes))
        boxes = boxes.reshape(-1, boxes.shape[-1] if boxes.ndim == 2 else 4)[:, :4]
        unmatched = list(range(len(boxes)))
        for track in self._tracks:
            region = np.array([track.crop.left, track.crop.top, track.crop.side, track.crop.side])
            overlaps = [(box_iou(region, boxes[i]), i) for i in unmatched]
            if overlaps and max(overlaps)[0] > 0.3:
                i = max(overlaps)[1]
                unmatched.remove(i)
                track.last_confirmed = seen_at
                if self._mean_shape is None:  # no mean shape to track with: follow the detector
                    track.box_xywh, track.crop = boxes[i], crop_from_box(boxes[i], angle_deg=float(angles[i]))
        new_boxes = boxes[unmatched]
        crops = self.pipeline.crops_for_boxes(gray, new_boxes, angles[unmatched])  # turned upright, like photos
        for box, crop in zip(new_boxes, crops, strict=True):
            if not any(_same_face(crop, t.crop) for t in self._tracks):
                self._tracks.append(_Track(box, crop, OneEuroFilter(SMOOTHING_MIN_CUTOFF_HZ, SMOOTHING_BETA), seen_at))

    def _predict(self, gray: np.ndarray, now: float, s: LiveSettings) -> list[Face]:
        if not self._tracks:
            return []
        keypoints = self.pipeline.keypoints_in_crops(gray, [t.crop for t in self._tracks],  # one batch for all faces
                                                     self.pipeline.live_predictor if s.int8 else None)
        faces = []
        for track, k in zip(self._tracks, keypoints, strict=True):
            smoothed = track.filter(k.reshape(-1), now).reshape(k.shape) if s.smoothing else k
            track.keypoints_px = smoothed
            read_in = track.crop
            if self._mean_shape is not None:  # the next frame's crop, and the face's box, follow the keypoints
                track.crop = _follow(read_in, smoothed, self._mean_shape)
                track.box_xywh = box_of_crop(track.crop)
            faces.append(Face(track.box_xywh, smoothed, read_in, track.crop.angle_deg))
        # Tracks follow their keypoints, so one started on part of a face can drift onto a face another track
        # already holds: the older track keeps that face, and the frame shows it once.
        kept: list[int] = []
        for i, track in enumerate(self._tracks):  # oldest first
            if not any(_same_face(track.crop, self._tracks[j].crop) for j in kept):
                kept.append(i)
        self._tracks = [self._tracks[i] for i in kept]
        return [faces[i] for i in kept]

    def _record(self, started: float, now: float, faces: list[Face], out: np.ndarray, drawn: bool) -> None:
        ms = (time.perf_counter() - started) * 1000
        with self._lock:
            st = self._stats
            st.frames += 1
            st.frames_with_face += bool(faces)
            st.overlays_drawn += drawn
            st.faces = len(faces)
            st.ms_per_frame = ms if st.frames == 1 else 0.9 * st.ms_per_frame + 0.1 * ms
            if st.last_frame_time and now > st.last_frame_time:
                inst = 1.0 / (now - st.last_frame_time)
                st.fps = inst if st.fps == 0 else 0.9 * st.fps + 0.1 * inst
            st.last_frame_time = now
            self._snapshot = LiveSnapshot(out, faces)  # `out` is a new array every frame: no copy needed
