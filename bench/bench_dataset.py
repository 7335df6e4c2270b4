"""Loading a Kaggle-size training file (7049 rows, ~230 MB) as the dataset page does.

    python bench/bench_dataset.py [--rows 7049]

Generates the file once (bench/out/), then times parsing (trainer.data.read_kaggle_csv: pandas +
pixel strings) separately from what the page renders from it (summary, completeness, missing
patterns, keypoint positions, a page of gallery tiles). The page parses once per file version
(st.cache_resource), so later reruns pay only the rendering share.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from pages.ui import pictures  # isort: skip  (imports streamlit_webrtc before TensorFlow)
from trainer import explore
from trainer.data import read_kaggle_csv, write_kaggle_csv
from trainer.synthetic import synthetic_faces


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=7049)
    args = p.parse_args()
    path = Path(__file__).resolve().parent / "out" / f"kaggle_{args.rows}.csv"
    if not path.is_file():
        data = synthetic_faces(args.rows, incomplete_every=3)  # like Kaggle: ~70% of rows incomplete
        data.images[:] = np.random.default_rng(0).integers(0, 256, data.images.shape, dtype=np.uint8)  # 3-digit pixels
        write_kaggle_csv(data, path)
    size_mb = path.stat().st_size / 1e6
    t0 = time.perf_counter()
    data = read_kaggle_csv(path)
    t1 = time.perf_counter()
    explore.summary(data)
    explore.completeness(data)
    explore.missing_patterns(data)
    explore.keypoint_positions(data)
    for i in explore.filter_rows(data, "incomplete")[:12]:
        pictures.face_picture(data.images[i], data.keypoints[i])
    t2 = time.perf_counter()
    print(f"{len(data)} rows, {size_mb:.0f} MB CSV")
    print(f"  parse (once per file, cached): {t1 - t0:6.2f} s ({(t1 - t0) / len(data) * 1000:.2f} ms/row)")
    print(f"  render (every page run):       {t2 - t1:6.2f} s")
    print(f"  parse share of a first load:   {(t1 - t0) / (t2 - t0):.0%}")


if __name__ == "__main__":
    main()
