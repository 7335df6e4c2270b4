"""Cost of the face verifier per detector box, against the keypoint model per face, in one run.

    python bench/bench_verifier.py [--calls 300]

Uses the shipped files (models/face-verifier.keras, models/keypoints.keras) through the app's own
classes (core.verifier.FaceVerifier, core.pipeline.FacePipeline). Prints medians of single-box
calls (crop from the box included, as in FacePipeline.detect), of a batch of 8 boxes, and the
keypoint model's cost per face as the app runs it (flip averaging and re-centring as its card says).
Goal: verifier <= 1 ms per box.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2
import numpy as np

from bench.bench_inference import median_ms
from core.images import load_image
from core.paths import SHARED_DATA, SHIPPED_MODEL, SHIPPED_VERIFIER
from core.pipeline import FacePipeline
from core.verifier import FaceVerifier

PHOTO = SHARED_DATA / "photos" / "james.jpg"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--calls", type=int, default=300)
    args = p.parse_args()
    verifier = FaceVerifier(SHIPPED_VERIFIER)
    pipeline = FacePipeline(SHIPPED_MODEL, verifier=verifier)
    if PHOTO.is_file():
        gray = cv2.cvtColor(load_image(PHOTO), cv2.COLOR_BGR2GRAY)
    else:  # no shared data: a frame of noise with a made-up box costs the same
        gray = np.random.default_rng(0).integers(0, 256, (480, 640), dtype=np.uint8)
    boxes = pipeline.detector.detect(gray)
    box = boxes[:1] if len(boxes) else np.array([[200, 100, 150, 150]])
    crop = pipeline.crops_for_boxes(gray, box.astype(float))[0].extract(gray)[None]
    one_box = median_ms(lambda: verifier.score_boxes(gray, box), args.calls)
    model_only = median_ms(lambda: verifier.score_crops(crop), args.calls)
    eight = median_ms(lambda: verifier.score_boxes(gray, np.repeat(box, 8, axis=0)), args.calls)
    keypoints = median_ms(lambda: pipeline.keypoints_for_boxes(gray, box), args.calls)
    keypoints_model = median_ms(lambda: pipeline.predictor.predict_crops(crop), args.calls)
    print(f"verifier {SHIPPED_VERIFIER.name} (widths {verifier.card.config.get('widths')}) vs keypoint "
          f"model {SHIPPED_MODEL.name}, median of {args.calls} calls, one {gray.shape[1]}x{gray.shape[0]} image")
    print(f"  verifier, one box (crop + ONNX):      {one_box:.3f} ms   goal <= 1 ms: {'PASS' if one_box <= 1 else 'FAIL'}")
    print(f"  verifier, one crop (ONNX only):       {model_only:.3f} ms")
    print(f"  verifier, 8 boxes in one batch:       {eight:.3f} ms ({eight / 8:.3f} ms per box)")
    print(f"  keypoint model per face, as the app:  {keypoints:.3f} ms (flip_average={pipeline.flip_average}, "
          f"recentre={pipeline.recentre is not None})")
    print(f"  keypoint model, one crop (ONNX only): {keypoints_model:.3f} ms")
    print(f"  ratio verifier box / app face:        {one_box / keypoints:.3f}")


if __name__ == "__main__":
    main()
