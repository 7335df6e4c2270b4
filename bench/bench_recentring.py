"""What re-centring costs per face: keypoints for a given detector box with each inference option.

    python bench/bench_recentring.py [--model models/keypoints.keras] [--faces 60]

Times `FacePipeline.keypoints_for_boxes` (crop, locator passes, keypoint model; detection excluded)
on real frames of the model's held-out people when ../shared is present, else on a synthetic
frame. Baseline in the same run: flip averaging alone, re-centring off.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from core.paths import SHARED_68_DATASET
from core.pipeline import FacePipeline
from core.registry import active_model_path


def frames_with_boxes(pipeline: FacePipeline, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(gray frame, detector boxes) pairs: held-out people's frames, or one synthetic frame."""
    if not SHARED_68_DATASET.is_file():
        noise = np.random.default_rng(0).integers(0, 256, (480, 640), dtype=np.uint8)
        return [(noise, np.array([[220, 120, 200, 200]]))] * count
    from trainer.frames import FrameSource, person_of

    source = FrameSource(SHARED_68_DATASET)
    people = set(pipeline.predictor.card.data.test_people or [])
    names, _ = source.read_labels()
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for name in names:
        if len(out) == count:
            break
        if people and person_of(name) not in people:
            continue
        gray = source.read_gray(name)
        if gray is None:
            continue
        boxes = pipeline.detector.detect(gray)
        if len(boxes):
            out.append((gray, boxes[:1]))
    return out


def median_ms(pipeline: FacePipeline, frames: list) -> float:
    for gray, boxes in frames[:5]:
        pipeline.keypoints_for_boxes(gray, boxes)
    times = []
    for gray, boxes in frames:
        t = time.perf_counter()
        pipeline.keypoints_for_boxes(gray, boxes)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default=str(active_model_path()))
    p.add_argument("--faces", type=int, default=60)
    args = p.parse_args()
    pipeline = FacePipeline(args.model)
    recentre = pipeline.recentre
    frames = frames_with_boxes(pipeline, args.faces)
    results = {}
    for label, flip, option in (("single pass", False, None), ("flip-averaged (baseline)", True, None),
                                ("flip-averaged + re-centring", True, recentre)):
        pipeline.flip_average, pipeline.recentre = flip, option
        results[label] = median_ms(pipeline, frames)
    print(f"model {args.model}, {len(frames)} faces ({'held-out frames' if SHARED_68_DATASET.is_file() else 'synthetic'}), "
          f"median ms per face, detection excluded; re-centring: {recentre}")
    for label, ms in results.items():
        print(f"  {label:30s} {ms:6.2f} ms")
    if recentre:
        ratio = results["flip-averaged + re-centring"] / results["flip-averaged (baseline)"]
        print(f"  re-centring costs {ratio:.1f}x the baseline per face (3 locator passes + the keypoint model)")


if __name__ == "__main__":
    main()
