"""Several threads share one FacePipeline (the app's sessions share one cached pipeline): each answer (boxes
from the per-thread cascades, verifier scores and keypoints from the shared ONNX Runtime sessions) must be
the one a single thread gets."""
from __future__ import annotations

import threading
import time

import numpy as np

from core.images import load_image
from core.pipeline import FacePipeline

PHOTOS = ("james.jpg", "obamas4.jpg", "gus.jpg", "fawzia.jpg", "mona_lisa.jpg", "streetview_no_face.jpg")


def test_threads_sharing_one_pipeline_get_the_single_thread_answers(photos, app_model_path):
    pipeline = FacePipeline(app_model_path)
    images = [load_image((photos / name).read_bytes()) for name in PHOTOS]
    expected = [pipeline.find_faces(img) for img in images]
    assert [len(f) for f in expected[:2]] == [1, 2]  # James alone, the Obamas together
    wrong: list[str] = []
    calls = [0]
    stop = time.monotonic() + 8.0

    def worker(offset: int) -> None:
        i = offset
        while time.monotonic() < stop:
            k = i % len(images)
            try:
                got, want = pipeline.find_faces(images[k]), expected[k]
                boxes, want_boxes = [f.box_xywh.tolist() for f in got], [f.box_xywh.tolist() for f in want]
                if boxes != want_boxes:
                    wrong.append(f"{PHOTOS[k]}: boxes {boxes} instead of {want_boxes}")
                elif not all(np.allclose(a.keypoints_px, b.keypoints_px, atol=1e-3)
                             for a, b in zip(got, want, strict=True)):
                    wrong.append(f"{PHOTOS[k]}: other keypoints")  # the shared ONNX Runtime sessions
            except Exception as exc:  # an OpenCV assertion from a shared cascade is a failure too
                wrong.append(f"{PHOTOS[k]}: {exc!r}")
            calls[0] += 1
            i += 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls[0] >= 8, "too few calls to say anything"
    assert not wrong, f"{len(wrong)} of {calls[0]} threaded calls differ: {wrong[:5]}"


def test_each_thread_loads_its_own_cascade():
    from core.detector import FaceDetector

    detector = FaceDetector()
    seen = []
    lock = threading.Lock()

    def grab() -> None:
        with lock:
            seen.append(detector._cascade)  # kept alive, so no two can share an id

    workers = [threading.Thread(target=grab) for _ in range(3)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    ids = {id(c) for c in seen}
    assert len(ids) == 3 and id(detector._cascade) not in ids
    assert all(detector._cascade is detector._cascade for _ in range(2))  # one per thread, made once
