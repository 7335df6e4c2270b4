"""Threads sharing one FacePipeline (what the app's sessions do): answers and throughput, with and without a lock.

    python bench/bench_threads.py [--threads 5] [--seconds 20]

Each thread runs `find_faces` on ../shared/data/photos (james, obamas4, gus, fawzia, mona_lisa and
the no-face street view) in turn and compares boxes and keypoints with the single-thread answers.
Rows, all in the same run: one thread (the baseline); `--threads` threads on the shared pipeline as
the app runs it (one Haar cascade per thread, ONNX Runtime sessions shared without a lock, which
ONNX Runtime allows); the same threads with one lock around the ONNX Runtime calls (what locking the
sessions would cost or gain). Prints calls/s, the ratio to one thread, and wrong or failed calls.
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from core.images import load_image  # noqa: E402
from core.paths import SHARED_DATA  # noqa: E402
from core.pipeline import FacePipeline  # noqa: E402
from core.registry import active_model_path  # noqa: E402

PHOTOS = ("james.jpg", "obamas4.jpg", "gus.jpg", "fawzia.jpg", "mona_lisa.jpg", "streetview_no_face.jpg")


def _answer(faces) -> list:
    return [(f.box_xywh.tolist(), np.round(f.keypoints_px, 3).tolist()) for f in faces]


def run(pipeline: FacePipeline, images: list, expected: list, threads: int, seconds: float) -> tuple[int, int, float]:
    """(calls, wrong or failed calls, seconds) of `threads` threads calling find_faces for `seconds`."""
    counts, wrong, lock = [0], [0], threading.Lock()
    stop = time.monotonic() + seconds

    def worker(offset: int) -> None:
        k = offset
        while time.monotonic() < stop:
            i = k % len(images)
            try:
                ok = _answer(pipeline.find_faces(images[i])) == expected[i]
            except Exception:  # noqa: BLE001  an OpenCV assertion counts as a wrong answer
                ok = False
            with lock:
                counts[0] += 1
                wrong[0] += not ok
            k += 1

    start = time.monotonic()
    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return counts[0], wrong[0], time.monotonic() - start


class Locked:
    """An ONNX Runtime session behind one lock (the alternative to sharing it unlocked)."""

    def __init__(self, session, lock: threading.Lock):
        self._session, self._lock = session, lock

    def run(self, *args, **kwargs):
        with self._lock:
            return self._session.run(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._session, name)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=5)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--model", default=str(active_model_path()))
    args = p.parse_args()
    folder = SHARED_DATA / "photos"
    if not all((folder / n).is_file() for n in PHOTOS):
        sys.exit(f"needs {', '.join(PHOTOS)} in {folder}")
    pipeline = FacePipeline(args.model)
    images = [load_image(folder / n) for n in PHOTOS]
    expected = [_answer(pipeline.find_faces(img)) for img in images]
    rows = [("1 thread (baseline)", *run(pipeline, images, expected, 1, args.seconds)),
            (f"{args.threads} threads, shared sessions, no lock", *run(pipeline, images, expected, args.threads,
                                                                         args.seconds))]
    lock = threading.Lock()
    models = [pipeline.predictor] + ([pipeline.verifier] if pipeline.verifier else [])
    for model in models:
        model._session = Locked(model._session, lock)
    rows.append((f"{args.threads} threads, one lock on the sessions", *run(pipeline, images, expected, args.threads,
                                                                          args.seconds)))
    base = rows[0][1] / rows[0][3]
    print(f"{'threads sharing one FacePipeline':<44} {'calls':>6} {'wrong':>6} {'calls/s':>8} {'vs 1 thread':>11}")
    for label, calls, wrong, seconds in rows:
        print(f"{label:<44} {calls:>6} {wrong:>6} {calls / seconds:>8.2f} {calls / seconds / base:>10.2f}x")


if __name__ == "__main__":
    main()
