"""A 12-megapixel photo (4000x3000) from upload bytes to rendered result, with the detector's share.

    python bench/bench_photo.py [--runs 7] [--model models/keypoints.keras]

The photo is ../shared/data/photos/obamas4.jpg scaled up to 4000x3000 (two real faces), or, without
../shared, a synthetic image (no faces: detection still scans the frame). Goal: median <= 1.0 s.
Baseline in the same run: detection on the full-resolution frame instead of the downscaled copy.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2
import numpy as np

from core.detector import DetectorSettings
from core.images import load_image
from core.paths import SHARED_DATA
from core.pipeline import FacePipeline, render
from core.registry import active_model_path


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--model", default=str(active_model_path()))
    args = p.parse_args()
    source = SHARED_DATA / "photos" / "obamas4.jpg"
    if source.is_file():
        big = cv2.resize(cv2.imread(str(source)), (4000, 3000), interpolation=cv2.INTER_CUBIC)
    else:
        big = np.random.default_rng(0).integers(0, 255, (3000, 4000, 3), dtype=np.uint8)
    upload = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()
    pipeline = FacePipeline(args.model)
    stages = {"decode": [], "detect": [], "keypoints": [], "render": [], "total": []}
    faces = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        image = load_image(upload)
        t1 = time.perf_counter()
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        boxes = pipeline.detector.detect(gray)
        t2 = time.perf_counter()
        faces = pipeline.keypoints_for_boxes(gray, boxes)
        t3 = time.perf_counter()
        render(image, faces, "sunglasses")
        t4 = time.perf_counter()
        for k, v in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0)):
            stages[k].append(v)
    med = {k: statistics.median(v) * 1000 for k, v in stages.items()}
    full_res = DetectorSettings(max_side=10_000)
    t = time.perf_counter()
    naive_boxes = pipeline.detector.detect(gray, full_res)
    naive_detect = (time.perf_counter() - t) * 1000
    print(f"12 MP photo ({'obamas4.jpg upscaled' if source.is_file() else 'synthetic'}), {len(upload) / 1e6:.1f} MB JPEG, "
          f"{len(faces)} faces, median of {args.runs} runs")
    for k in ("decode", "detect", "keypoints", "render"):
        print(f"  {k:9s} {med[k]:7.1f} ms  ({med[k] / med['total']:.0%})")
    print(f"  total     {med['total']:7.1f} ms   goal <= 1000 ms: {'PASS' if med['total'] <= 1000 else 'FAIL'}")
    print(f"  baseline: detecting on the full 4000x3000 frame takes {naive_detect:.0f} ms "
          f"({naive_detect / med['detect']:.1f}x the downscaled detection; {len(naive_boxes)} boxes)")


if __name__ == "__main__":
    main()
