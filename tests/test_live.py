"""The live (webcam) engine without a browser: smoothing, tracking, grace period, settings, stats,
the background detection worker and process, and the webcam page's clip files."""
import os
import signal
import threading
import time

import cv2
import numpy as np
import pytest

from core.clips import SessionClip, sweep
from core.images import load_image
from core.live import DetectionWorker, LiveProcessor, LiveSettings
from core.pipeline import FacePipeline
from core.smoothing import OneEuroFilter


def test_one_euro_filter_steadies_noise_and_follows_motion():
    rng = np.random.default_rng(0)
    f = OneEuroFilter(0.2, 0.3)
    still = [f(np.array([100.0, 50.0]) + rng.normal(0, 1, 2), t / 30) for t in range(120)]
    assert np.std(still[30:], axis=0).max() < 0.7  # input sd is 1 px
    g = OneEuroFilter(0.2, 0.3)
    moving = [g(np.array([t * 5.0, 0.0]), t / 30) for t in range(60)]  # 150 px/s
    assert abs(moving[-1][0] - 59 * 5.0) < 10  # keeps up within a few frames' travel


@pytest.fixture(scope="module")
def two_face_frame(photos):
    image = load_image(photos / "obamas4.jpg")
    return cv2.resize(image, (640, 422))


def test_tracks_several_faces_and_drops_them_after_the_grace_period(two_face_frame, app_model_path):
    processor = LiveProcessor(FacePipeline(app_model_path), LiveSettings(effect="sunglasses", mirror=False, grace_s=0.3,
                                                                         background_detection=False))
    for i in range(12):
        out = processor.process(two_face_frame, now=i / 30)
    stats = processor.stats()
    assert stats.faces == 2 and stats.frames == 12 and stats.frames_with_face == 12 and stats.overlays_drawn == 12
    assert not np.array_equal(out, two_face_frame)  # sunglasses drawn
    blank = np.full_like(two_face_frame, 100)
    for i in range(12, 30):  # 0.6 s without the faces
        processor.process(blank, now=i / 30)
    assert processor.stats().faces == 0


def test_mirror_and_effect_changes_apply_while_streaming(tiny_model_path):
    processor = LiveProcessor(FacePipeline(tiny_model_path), LiveSettings(effect="none", mirror=True))
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[:, :8] = 255
    assert processor.process(frame, now=0.0)[:, -8:].min() == 255  # mirrored
    processor.update(mirror=False)
    assert processor.process(frame, now=0.1)[:, :8].min() == 255
    errors = []

    def hammer():
        try:
            for k in range(200):
                processor.update(effect=("blur", "none")[k % 2])
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    thread = threading.Thread(target=hammer)
    thread.start()
    for i in range(50):
        processor.process(frame, now=0.2 + i / 30)
    thread.join()
    assert not errors and processor.stats().frames == 52


def test_ice_servers_default_to_none_and_come_from_the_environment(monkeypatch):
    from pages.ui.live import rtc_configuration

    monkeypatch.delenv("FKS_ICE_SERVERS", raising=False)
    assert rtc_configuration() == {"iceServers": []}
    monkeypatch.setenv("FKS_ICE_SERVERS", '[{"urls": ["stun:stun.example.org:3478"]}]')
    assert rtc_configuration()["iceServers"][0]["urls"] == ["stun:stun.example.org:3478"]


class SlowDetector:
    """The pipeline's detection step, made to wait for `release` from its second call on."""

    def __init__(self, pipeline):
        self.pipeline, self.calls = pipeline, 0
        self.real_detect = pipeline.detect
        self.release = threading.Event()

    def __call__(self, gray, settings=None):
        self.calls += 1
        if self.calls > 1:
            self.release.wait(30)
        return self.real_detect(gray, settings)


def _wait_for(condition, timeout_s=10):
    deadline = time.time() + timeout_s
    while not condition() and time.time() < deadline:
        time.sleep(0.01)
    return condition()


def test_frames_do_not_wait_for_a_slow_detector_and_tracks_follow_its_answers(two_face_frame, app_model_path):
    pipeline = FacePipeline(app_model_path)
    slow = SlowDetector(pipeline)
    pipeline.detect = slow  # on the detection thread, the processor detects through the pipeline's detection step
    processor = LiveProcessor(pipeline, LiveSettings(effect="keypoints", mirror=False, grace_s=0.05,
                                                     detection_process=False))
    processor.process(two_face_frame, now=0.0)  # a stream's first frame: detected on the frame path
    assert processor.stats().faces == 2 and slow.calls == 1
    blank = np.full_like(two_face_frame, 100)
    started = time.perf_counter()
    for i in range(1, 10):
        processor.process(blank, now=i / 30)
    assert time.perf_counter() - started < 10  # the detector is held for 30 s: no frame waited for it
    assert _wait_for(lambda: slow.calls == 2)  # one detection in flight, not one per frame
    assert processor.stats().frames == 10 and processor.stats().faces == 2  # no answer yet: faces kept
    slow.release.set()
    assert processor._worker.wait_idle(10)
    processor.process(blank, now=10 / 30)  # the answer (no face) arrives: the tracks are dropped
    assert processor.stats().faces == 0
    for i in range(11, 30):  # the faces come back: found by the next answers
        processor._worker.wait_idle(10)
        processor.process(two_face_frame, now=i / 30)
    assert processor.stats().faces == 2
    processor.close()


def test_the_worker_detects_only_the_newest_frame_and_stops_cleanly():
    seen, gate = [], threading.Event()

    def detect(gray):
        gate.wait(5)
        seen.append(int(gray[0, 0]))
        return np.array([[int(gray[0, 0]), 0, 10, 10]])

    before = threading.active_count()
    worker = DetectionWorker(detect)
    assert worker.take_result() is None
    for value in (1, 2, 3):  # 1 starts; 2 is replaced by 3 while the detector is busy
        worker.submit(np.full((4, 4), value, np.uint8), stamp=value)
        time.sleep(0.05)
    assert not worker.idle
    gate.set()
    assert worker.wait_idle(5)
    assert seen == [1, 3]
    answer = worker.take_result()
    assert answer.stamp == 3 and answer.boxes_xywh[0, 0] == 3 and worker.take_result() is None
    worker.close()
    assert not worker.alive and threading.active_count() == before
    worker.submit(np.zeros((4, 4), np.uint8), stamp=4)  # after close: ignored, no thread restarted
    assert not worker.alive


def test_a_detector_error_reaches_the_frame_thread():
    def detect(gray):
        raise RuntimeError("cascade failed")

    worker = DetectionWorker(detect)
    worker.submit(np.zeros((4, 4), np.uint8), stamp=0)
    assert worker.wait_idle(5)
    with pytest.raises(RuntimeError, match="cascade failed"):
        worker.take_result()
    worker.close()


def test_processors_leave_no_detection_thread_behind(tiny_model_path):
    pipeline = FacePipeline(tiny_model_path)
    frame = np.zeros((48, 64, 3), np.uint8)
    before = threading.active_count()
    closed = LiveProcessor(pipeline)
    closed.process(frame, now=0.0)
    assert threading.active_count() == before  # the first frame is detected on the frame path
    closed.process(frame, now=0.1)
    assert threading.active_count() == before + 1
    closed.close()
    assert threading.active_count() == before
    closed.process(frame, now=0.2)  # a late frame after the stream ended: detected on the frame path
    assert threading.active_count() == before and closed.stats().frames == 3
    dropped = LiveProcessor(pipeline)
    dropped.process(frame, now=0.0)
    dropped.process(frame, now=0.1)
    del dropped  # never closed: garbage collection stops its thread
    import gc

    gc.collect()
    deadline = time.time() + 5
    while threading.active_count() > before and time.time() < deadline:
        time.sleep(0.05)
    assert threading.active_count() == before


def test_snapshot_is_the_last_frame_sent_back_with_its_faces(two_face_frame, app_model_path):
    processor = LiveProcessor(FacePipeline(app_model_path), LiveSettings(effect="keypoints", mirror=True,
                                                                         background_detection=False))
    assert processor.snapshot() is None
    out = processor.process(two_face_frame, now=0.0)
    snap = processor.snapshot()
    assert snap.frame_bgr is out and len(snap.faces) == 2
    for face in snap.faces:  # keypoints in the mirrored frame's pixels, inside the frame
        assert (face.keypoints_px >= 0).all() and (face.keypoints_px[:, 0] < out.shape[1]).all()


def test_a_session_clip_replaces_its_last_clip_and_is_removed_with_the_session(tmp_path):
    clip = SessionClip(tmp_path)
    assert not clip.ready and not clip.recording
    first = clip.start_recording()
    first.write_bytes(b"first")
    assert not clip.ready and clip.recording  # still being written
    clip.finish_recording(first)
    assert clip.ready and not clip.recording and clip.path.read_bytes() == b"first" and clip.path.parent == tmp_path
    second = clip.start_recording()
    second.write_bytes(b"second")
    assert clip.ready and clip.recording and clip.path.read_bytes() == b"first"  # offered until replaced
    clip.finish_recording(second)
    assert clip.path.read_bytes() == b"second" and not second.exists()
    broken = clip.start_recording()
    broken.write_bytes(b"broken")
    clip.abandon_recording(broken)  # the muxer failed: the last clip stays
    assert clip.ready and not clip.recording and clip.path.read_bytes() == b"second"
    assert not broken.exists()
    other = SessionClip(tmp_path)
    assert other.path != clip.path
    path, unfinished = clip.path, clip.start_recording()
    unfinished.write_bytes(b"cut off")
    del clip
    import gc

    gc.collect()
    assert not path.exists() and not unfinished.exists()


def test_a_recording_still_finishing_when_the_next_one_starts_keeps_its_own_file(tmp_path):
    """STOP's recorder may still be closing its file when the next START's recorder begins."""
    clip = SessionClip(tmp_path)
    older = clip.start_recording()
    older.write_bytes(b"older")
    newer = clip.start_recording()
    assert newer != older and older.read_bytes() == b"older"  # the new recording touches nothing of the old one
    newer.write_bytes(b"newer")
    clip.finish_recording(older)
    assert clip.path.read_bytes() == b"older" and clip.recording and newer.read_bytes() == b"newer"
    clip.finish_recording(newer)
    assert clip.path.read_bytes() == b"newer" and not clip.recording
    # ...and when the newer one finishes first, the older one finishing later does not replace it
    late, early = clip.start_recording(), clip.start_recording()
    late.write_bytes(b"late")
    early.write_bytes(b"early")
    clip.finish_recording(early)
    clip.finish_recording(late)
    assert clip.path.read_bytes() == b"early" and not late.exists() and not clip.recording
    assert sorted(p.name for p in tmp_path.iterdir()) == [clip.path.name]


def test_sweep_removes_clips_older_than_the_budget(tmp_path):
    old, new = tmp_path / "a.mp4", tmp_path / "b.part.mp4"
    old.write_bytes(b"x")
    new.write_bytes(b"y")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    assert sweep(tmp_path, ttl_s=1800) == 1
    assert not old.exists() and new.exists()
    assert sweep(tmp_path / "missing") == 0


def test_a_face_moving_between_detections_is_followed_by_its_keypoints(two_face_frame, app_model_path):
    """Detection runs on the first frame only; the face then slides 60 px right and 30 px down, and its
    keypoints must follow it there (tracking by the keypoints themselves, core.live), not stay behind."""
    canvas = np.full((560, 800, 3), 120, np.uint8)
    processor = LiveProcessor(FacePipeline(app_model_path),
                              LiveSettings(effect="none", mirror=False, detect_every=10_000, grace_s=60.0,
                                           smoothing=False, background_detection=False))
    steps = 20
    for i in range(steps + 1):
        frame = canvas.copy()
        dx, dy = 3 * i, int(1.5 * i)
        frame[40 + dy:40 + dy + 422, 40 + dx:40 + dx + 640] = two_face_frame
        processor.process(frame, now=i / 30)
        if i == 0:
            start = sorted((f.keypoints_px for f in processor.snapshot().faces), key=lambda k: k[:, 0].mean())
    end = sorted((f.keypoints_px for f in processor.snapshot().faces), key=lambda k: k[:, 0].mean())
    assert len(start) == len(end) == 2
    fresh = FacePipeline(app_model_path).find_faces(frame)  # where a new detection would put them now
    fresh = sorted((f.keypoints_px for f in fresh), key=lambda k: k[:, 0].mean())
    for before, after, truth in zip(start, end, fresh):
        moved = (after - before).mean(axis=0)
        assert moved == pytest.approx([3 * steps, 1.5 * steps], abs=6)  # followed the 60 x 30 px slide
        assert np.abs(after - truth).mean() < 6  # and agrees with a fresh detection there


def test_the_detection_thread_yields_the_cores_to_the_frame_path():
    """Only the worker's own thread is niced (Linux schedules threads on their own): the frame path keeps its priority."""
    if not hasattr(threading, "get_native_id") or not os.uname().sysname == "Linux":
        pytest.skip("per-thread priority is a Linux feature")
    niceness = {}

    def detect(gray):
        niceness["worker"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        return np.zeros((0, 4), int)

    worker = DetectionWorker(detect)
    worker.submit(np.zeros((8, 8), np.uint8), 0.0)
    assert worker.wait_idle(10)
    worker.close()
    here = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert niceness["worker"] == min(here + 10, 19) and os.getpriority(os.PRIO_PROCESS, 0) == here


def test_the_cascade_runs_in_a_niced_process_that_ends_with_the_stream(two_face_frame, app_model_path):
    processor = LiveProcessor(FacePipeline(app_model_path), LiveSettings(effect="keypoints", mirror=False, grace_s=0.01))
    processor.process(two_face_frame, now=0.0)  # first frame: on the frame path
    processor.process(two_face_frame, now=1 / 30)  # starts the worker and its process
    child = processor._detector_process
    blank = np.full_like(two_face_frame, 100)
    processor._worker.submit(cv2.cvtColor(blank, cv2.COLOR_BGR2GRAY), stamp=2 / 30)
    assert processor._worker.wait_idle(30) and child.alive
    if os.uname().sysname == "Linux":  # it has answered, so it has lowered its priority by now
        assert os.getpriority(os.PRIO_PROCESS, child.pid) == min(os.getpriority(os.PRIO_PROCESS, 0) + 10, 19)
    processor.process(blank, now=3 / 30)  # the process's answer (no face) drops the tracks
    assert processor.stats().faces == 0
    for i in range(4, 40):  # and its next answers find both faces again
        processor._worker.wait_idle(30)
        processor.process(two_face_frame, now=i / 30)
    assert processor.stats().faces == 2
    processor.close()
    assert not child.alive and processor._detector_process is None


def test_a_killed_detection_process_falls_back_to_the_detection_thread(two_face_frame, app_model_path, caplog):
    processor = LiveProcessor(FacePipeline(app_model_path), LiveSettings(effect="keypoints", mirror=False, grace_s=0.01))
    processor.process(two_face_frame, now=0.0)
    processor.process(two_face_frame, now=1 / 30)
    child = processor._detector_process
    os.kill(child.pid, signal.SIGKILL)
    child._process.wait(10)
    for i in range(2, 30):  # no exception reaches the frame path, and detection goes on in-process
        processor._worker.wait_idle(30)
        processor.process(two_face_frame, now=i / 30)
    assert processor.stats().faces == 2
    processor._worker.submit(np.full(two_face_frame.shape[:2], 100, np.uint8), stamp=2.0)
    assert processor._worker.wait_idle(30)
    processor.process(two_face_frame, now=2.0)
    assert processor.stats().faces == 0  # the in-process answer (no face on the blank frame) was used
    assert processor._detector_process is None and child._process.returncode is not None  # reaped, not restarted
    assert [r.message for r in caplog.records if "detection process ended" in r.message] != []
    processor.close()


def test_a_detection_process_that_cannot_start_leaves_detection_on_the_thread(two_face_frame, app_model_path,
                                                                                monkeypatch, caplog):
    import core.live

    def cannot_start(*args, **kwargs):
        raise OSError("no pipes here")

    monkeypatch.setattr(core.live, "DetectorProcess", cannot_start)
    processor = LiveProcessor(FacePipeline(app_model_path), LiveSettings(effect="keypoints", mirror=False))
    for i in range(12):
        processor.process(two_face_frame, now=i / 30)
        if processor._worker is not None:
            processor._worker.wait_idle(30)
    assert processor._detector_process is None and processor.stats().faces == 2
    assert any("no pipes here" in r.getMessage() for r in caplog.records)
    processor.close()


def test_mirror_view_names_the_persons_own_left_eye(shared_data, app_model_path):
    from core.overlays import label_boxes
    from core.schema import INDEX
    from tests.helpers import video_frames

    frame = video_frames(shared_data / "video" / "frontal_face_320x240.mp4", limit=1)[0]
    pipeline = FacePipeline(app_model_path)

    def keypoints(mirror: bool) -> np.ndarray:
        processor = LiveProcessor(pipeline, LiveSettings(effect="labelled keypoints", mirror=mirror, smoothing=False,
                                                         background_detection=False))
        processor.process(frame, now=0.0)
        (face,) = processor.snapshot().faces
        processor.close()
        return face.keypoints_px

    plain, mirrored = keypoints(False), keypoints(True)
    left, right = INDEX["left_eye_center"], INDEX["right_eye_center"]
    assert plain[left, 0] > plain[right, 0]  # the person's left eye is on the image's right ...
    assert mirrored[left, 0] < mirrored[right, 0]  # ... and on its left in the mirror view
    assert abs((frame.shape[1] - 1 - mirrored[left, 0]) - plain[left, 0]) < 6  # the same eye
    number_1 = label_boxes(mirrored, (frame.shape[1], frame.shape[0]))[left]  # "1" is drawn beside it
    centre = np.array([(number_1[0] + number_1[2]) / 2, (number_1[1] + number_1[3]) / 2])
    assert np.linalg.norm(centre - mirrored[left]) < np.linalg.norm(centre - mirrored[right])


def test_two_tracks_that_reach_one_face_show_it_once(two_face_frame, app_model_path):
    """A track started on part of a face follows its keypoints onto the whole face; if another track holds that
    face, the older one keeps it, so the frame (and a snapshot) has each face once."""
    from dataclasses import replace

    processor = LiveProcessor(FacePipeline(app_model_path), LiveSettings(mirror=False, background_detection=False))
    processor.process(two_face_frame, now=0.0)
    assert processor.stats().faces == 2
    first = processor._tracks[0]
    nudged = replace(first.crop, left=first.crop.left + first.crop.side / 10)  # the same face, a little off
    processor._tracks.append(replace(first, crop=nudged, filter=OneEuroFilter(0.2, 0.3)))
    processor.process(two_face_frame, now=1 / 30)
    assert processor.stats().faces == 2 and len(processor._tracks) == 2
    assert len(processor.snapshot().faces) == 2
