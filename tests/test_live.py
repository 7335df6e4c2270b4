"""The live (webcam) engine without a browser: smoothing, tracking, grace period, settings, stats."""
import threading

import cv2
import numpy as np
import pytest

from core.live import LiveProcessor, LiveSettings, rtc_configuration
from core.images import load_image
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
    processor = LiveProcessor(FacePipeline(app_model_path), LiveSettings(effect="sunglasses", mirror=False, grace_s=0.3))
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


def test_stats_file_for_tests_and_monitoring(tmp_path, tiny_model_path):
    stats_file = tmp_path / "stats.json"
    processor = LiveProcessor(FacePipeline(tiny_model_path), stats_file=str(stats_file))
    for i in range(30):
        processor.process(np.zeros((48, 64, 3), np.uint8), now=i / 30)
    import json

    assert json.loads(stats_file.read_text())["frames"] == 30


def test_ice_servers_default_to_none_and_come_from_the_environment(monkeypatch):
    monkeypatch.delenv("FKS_ICE_SERVERS", raising=False)
    assert rtc_configuration() == {"iceServers": []}
    monkeypatch.setenv("FKS_ICE_SERVERS", '[{"urls": ["stun:stun.example.org:3478"]}]')
    assert rtc_configuration()["iceServers"][0]["urls"] == ["stun:stun.example.org:3478"]
