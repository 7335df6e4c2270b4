"""One-face inference of the keypoint model: the fast path (ONNX Runtime) against `model(x)`.

    python bench/bench_inference.py [--widths 32,64,128,256,512] [--calls 200]

Prints the median over `calls` single-face calls of each path, and their ratio, from one run.
Goal (issue 2): fast path <= 3 ms at the default widths on the 2-core CPU.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from core.model import DEFAULT_WIDTHS, KeypointPredictor, build_model, save_model, to_model_input  # noqa: E402


def median_ms(fn, calls: int) -> float:
    for _ in range(10):
        fn()
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--widths", type=lambda s: tuple(int(v) for v in s.split(",")), default=DEFAULT_WIDTHS)
    p.add_argument("--calls", type=int, default=200)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = build_model(args.widths)
        path = save_model(model, Path(tmp) / "bench.keras")
        predictor = KeypointPredictor(path)
        crop = np.random.default_rng(0).integers(0, 256, (1, 96, 96), dtype=np.uint8)
        x = to_model_input(crop)
        fast = median_ms(lambda: predictor.predict_crops(crop), args.calls)
        keras_call = median_ms(lambda: model(x, training=False), min(args.calls, 100))
        batch8 = median_ms(lambda: predictor.predict_crops(np.repeat(crop, 8, axis=0)), args.calls)
    print(f"widths {'->'.join(map(str, args.widths))}, one 96x96 face, median of {args.calls} calls")
    print(f"  ONNX Runtime (KeypointPredictor.predict_crops): {fast:.2f} ms   goal <= 3 ms: {'PASS' if fast <= 3 else 'FAIL'}")
    print(f"  keras model(x) baseline:                        {keras_call:.2f} ms")
    print(f"  ratio model(x) / fast path:                     {keras_call / fast:.1f}x")
    print(f"  8 faces in one batch (fast path):               {batch8:.2f} ms ({batch8 / 8:.2f} ms per face)")


if __name__ == "__main__":
    main()
