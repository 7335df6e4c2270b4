"""One-face inference of the keypoint model: ONNX Runtime float and int8 twins against `model(x)`.

    python bench/bench_inference.py [--model models/keypoints.keras] [--baseline OTHER.keras] [--calls 300]

Prints, from one run, the median over `calls` single-face calls of: the float ONNX twin as the app
loads it today (2 intra-op threads, no spinning), the same with one thread, the int8 twin (the one
trainer.ship made beside the model, else trainer.export.quantize_onnx here, calibrated on detector crops
of ../shared/data/video, or on random crops without ../shared), and keras `model(x)`; with --baseline,
another model's float twin in the same rounds (e.g. the previous shipped model: `git show
REV:models/keypoints.keras`, and its .onnx). Goal (issue 15): one face <= 1 ms. The int8 twin's
accuracy on the validation people is in the model card (inference.int8) and README, "The shipped model".
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2
import numpy as np

from core.detector import FaceDetector
from core.geometry import crop_from_box
from core.model import KeypointPredictor, file_sha256, int8_path_for, onnx_path_for, to_model_input
from core.paths import REPO_ROOT, SHIPPED_MODEL
from core.twins import FasterTwin
from trainer.export import load_keras_model, quantize_onnx

VIDEO = REPO_ROOT.parent / "shared" / "data" / "video" / "frontal_face_320x240.mp4"


def calibration_crops(limit: int = 200) -> np.ndarray:
    """Detector crops of the recorded video (no person of the training data), or random crops without it."""
    crops: list[np.ndarray] = []
    detector = FaceDetector()
    capture = cv2.VideoCapture(str(VIDEO))
    while len(crops) < limit:
        ok, frame = capture.read()
        if not ok:
            break
        gray = cv2.cvtColor(cv2.resize(frame, (640, 480)), cv2.COLOR_BGR2GRAY)
        boxes = detector.detect(gray)
        if len(boxes):
            crops.append(crop_from_box(boxes[0]).extract(gray))
    if not crops:
        return np.random.default_rng(0).integers(0, 256, (limit, 96, 96), dtype=np.uint8)
    return np.stack(crops)


def median_ms(fn, calls: int) -> float:
    for _ in range(20):
        fn()
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default=str(SHIPPED_MODEL))
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--baseline", help="another .keras (with its ONNX twin beside it) timed in the same rounds")
    args = p.parse_args()
    crops = calibration_crops()
    with tempfile.TemporaryDirectory() as tmp:
        model_path = Path(tmp) / "bench.keras"  # a copy, so the bench writes nothing beside the real model
        shutil.copy(args.model, model_path)
        shutil.copy(onnx_path_for(args.model), onnx_path_for(model_path))
        shipped_twin = int8_path_for(args.model).is_file()
        if shipped_twin:  # the twin trainer.ship made and measured (calibrated on training faces)
            shutil.copy(int8_path_for(args.model), int8_path_for(model_path))
        else:
            quantize_onnx(onnx_path_for(model_path), crops, int8_path_for(model_path), file_sha256(model_path))
        today, int8 = KeypointPredictor(model_path), KeypointPredictor(model_path, int8=True)
        one_thread = KeypointPredictor(model_path, threads=1)  # the session option that could matter most
        baseline = KeypointPredictor(args.baseline) if args.baseline else None
        model = load_keras_model(model_path)
        crop = crops[:1]
        x = to_model_input(crop)
        figures: dict[str, list[float]] = {}
        for _ in range(2):  # alternate, so a burst of load on the shared machine hits both
            figures.setdefault("today", []).append(median_ms(lambda: today.predict_crops(crop), args.calls))
            figures.setdefault("int8", []).append(median_ms(lambda: int8.predict_crops(crop), args.calls))
            figures.setdefault("one thread", []).append(median_ms(lambda: one_thread.predict_crops(crop), args.calls))
            if baseline:
                figures.setdefault("baseline", []).append(median_ms(lambda: baseline.predict_crops(crop), args.calls))
        keras_call = median_ms(lambda: model(x, training=False), 100)
        eight = np.repeat(crop, 8, axis=0)
        batch8 = {"today": median_ms(lambda: today.predict_crops(eight), args.calls),
                  "int8": median_ms(lambda: int8.predict_crops(eight), args.calls)}
        chooser = FasterTwin(today, int8)  # what the webcam measures on first use
        diff = np.abs(today.predict_crops(crops) - int8.predict_crops(crops))
    fast, base = min(figures["int8"]), min(figures["today"])
    print(f"{Path(args.model).name}, one 96x96 face, median of {args.calls} calls (best of 2 rounds)")
    print(f"  float ONNX twin (today):      {base:.2f} ms   rounds {', '.join(f'{v:.2f}' for v in figures['today'])}")
    print(f"  float, 1 intra-op thread:     {min(figures['one thread']):.2f} ms   rounds "
          f"{', '.join(f'{v:.2f}' for v in figures['one thread'])}")
    int8_rounds = ", ".join(f"{v:.2f}" for v in figures["int8"])
    print(f"  int8 ONNX twin ({'shipped' if shipped_twin else 'made here'}):     {fast:.2f} ms   rounds {int8_rounds}"
          f"   goal <= 1 ms: {'PASS' if fast <= 1 else 'FAIL'}")
    print(f"  keras model(x):               {keras_call:.2f} ms")
    if baseline:
        print(f"  baseline {Path(args.baseline).name} float twin: {min(figures['baseline']):.2f} ms   rounds "
              f"{', '.join(f'{v:.2f}' for v in figures['baseline'])}; this model / baseline: "
              f"{base / min(figures['baseline']):.2f}x")
    print(f"  speed-up int8 / float:        {base / fast:.1f}x")
    print(f"  1 face:                       float {base:.2f} ms, int8 {fast:.2f} ms")
    print(f"  8 faces in one batch:         float {batch8['today']:.2f} ms, int8 {batch8['int8']:.2f} ms")
    print(f"  the webcam's choice per batch (flip averaging doubles it: 1 face = 2 crops, 8 faces = 16): "
          f"{chooser.summary()}")
    print(f"  int8 vs float keypoints on {len(crops)} calibration crops: mean |diff| {diff.mean():.2f} crop px, "
          f"max {diff.max():.2f}")


if __name__ == "__main__":
    main()
