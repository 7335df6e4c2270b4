"""Peak memory of reading a Kaggle-format .csv.gz: the chunked reader vs the whole-table read it replaced.

    python bench/bench_csv_memory.py [--rows 30000]

Makes the files itself (bench/out/): `--rows` rows of synthetic faces as .csv.gz (small on disk: the
drawn faces compress well, like the 0.6 MB file that peaked at 1.7 GB), and a 49 KB-class .csv.gz
with one 25-million-token pixel row. Each read runs in a fresh child process, which reports its
peak RSS (ru_maxrss), its RSS after imports, and seconds. Baseline in the same run: the previous
reader (pandas reads the whole table, then each row's pixels are split), kept here only to measure.
Goal: the chunked read of 30,000 rows peaks at <= 1.5 GB; the final arrays are rows x 9216 bytes.
"""
from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.schema import COORD_COLUMNS, IMAGE_COLUMN
from trainer.data import PIXELS
from trainer.synthetic import synthetic_faces

OUT = Path(__file__).resolve().parent / "out"

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {repo!r})
import numpy as np, pandas as pd
from trainer.data import DatasetError, read_kaggle_csv, _parse_pixels
from core.schema import IMAGE_COLUMN
ready = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
outcome = ""
try:
    if {how!r} == "chunked":
        data = read_kaggle_csv({path!r})
        outcome = f"{{len(data)}} rows, images {{data.images.nbytes / 2**20:.0f}} MB"
    else:  # the previous reader: the whole table as strings, then every row's pixels
        table = pd.read_csv({path!r}, dtype={{IMAGE_COLUMN: str}}, low_memory=False)
        images = np.empty((len(table), 96, 96), np.uint8)
        for i, text in enumerate(table[IMAGE_COLUMN].to_numpy()):
            images[i] = _parse_pixels(text, i)
        outcome = f"{{len(table)}} rows"
except DatasetError as exc:
    outcome = f"refused: {{str(exc)[:90]}}"
print(json.dumps({{"ready_mb": ready / 1024, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "s": time.perf_counter() - start, "outcome": outcome}}))
"""


def make_rows_file(rows: int) -> Path:
    """`rows` rows cycling through 500 drawn faces, streamed to gzip (never all in memory)."""
    path = OUT / f"kaggle_{rows}.csv.gz"
    if path.is_file():
        return path
    faces = synthetic_faces(500, seed=3)
    lines = [",".join(f"{v:.3f}" for v in k.reshape(-1)) + "," + " ".join(map(str, img.reshape(-1).tolist())) + "\n"
             for img, k in zip(faces.images, faces.keypoints, strict=True)]
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wt", compresslevel=6) as f:
        f.write(",".join([*COORD_COLUMNS, IMAGE_COLUMN]) + "\n")
        for i in range(rows):
            f.write(lines[i % len(lines)])
    tmp.rename(path)
    return path


def make_long_line_file(tokens: int = 25_000_000) -> Path:
    """One row whose pixel string holds `tokens` numbers: a few KB compressed."""
    path = OUT / f"long_line_{tokens}.csv.gz"
    if not path.is_file():
        OUT.mkdir(parents=True, exist_ok=True)
        with gzip.open(path, "wt", compresslevel=9) as f:
            f.write(",".join([*COORD_COLUMNS, IMAGE_COLUMN]) + "\n" + ",".join(["40"] * len(COORD_COLUMNS)) + ",")
            block = "1 " * 1_000_000
            for _ in range(tokens // 1_000_000):
                f.write(block)
            f.write("\n")
    return path


def measure(path: Path, how: str) -> dict:
    code = CHILD.format(repo=str(REPO), path=str(path), how=how)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=30_000)
    args = p.parse_args()
    files = [make_rows_file(args.rows), make_long_line_file()]
    print(f"{'file':<28} {'MB on disk':>10} {'reader':<12} {'peak RSS MB':>11} {'after imports':>13} {'s':>6}  outcome")
    for path in files:
        results = {how: measure(path, how) for how in ("whole-table", "chunked")}
        for how, r in results.items():
            print(f"{path.name:<28} {path.stat().st_size / 2**20:>10.2f} {how:<12} {r['peak_mb']:>11.0f} "
                  f"{r['ready_mb']:>13.0f} {r['s']:>6.1f}  {r['outcome']}")
        grown = {how: r["peak_mb"] - r["ready_mb"] for how, r in results.items()}
        print(f"  growth over imports: chunked {grown['chunked']:.0f} MB vs whole-table {grown['whole-table']:.0f} MB "
              f"({grown['whole-table'] / max(grown['chunked'], 1):.1f}x less); final images "
              f"{args.rows * PIXELS / 2**20:.0f} MB" if path == files[0] else "")


if __name__ == "__main__":
    main()
