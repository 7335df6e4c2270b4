"""Two or more keypoint models on the same held-out people, frame by frame: is a difference more than noise?

    python bench/bench_aux68.py BASELINE.keras OTHER.keras [...] --frames ../shared/data/youtube-faces-68/training.zip

For the 68-point auxiliary head (train --aux68, README "The 68 points as teachers"): each model runs the
app's path (detector -> crop -> ONNX twin, flip-averaged, no re-centring) on the **validation** people of
the first model's card (--people test only after a choice is made), and prints per model the end-to-end
NME, median frame, frames above 0.10 and detection; then, per other model, its NME minus the first's
on the frames both detected, with a 95% interval from resampling people (frames of one person are not
independent), so "wins by a clear margin" means the interval stays below 0.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from core.card import read_card
from core.pipeline import FacePipeline
from core.schema import ibug68_to_kaggle15, interocular_distance
from trainer.evaluate import FAILURE_NME
from trainer.frames import FrameSource, best_box_index, person_of


def frame_nmes(model: str, frames: str, people: list[str]) -> dict[str, float]:
    """NME of every frame of `people` whose labelled face the detector found, by frame name."""
    source = FrameSource(frames)
    names, points68 = source.read_labels()
    pipeline = FacePipeline(model, flip_average=True, recentre=False)
    out: dict[str, float] = {}
    for name, pts in zip(names, points68):
        if person_of(name) not in people or (gray := source.read_gray(name)) is None:
            continue
        detections = pipeline.detect(gray)
        i = best_box_index(detections.boxes_xywh, pts, detections.angles_deg)
        if i is None:
            out[name] = np.nan
            continue
        face = pipeline.keypoints_for_boxes(gray, detections.boxes_xywh[i:i + 1], detections.angles_deg[i:i + 1])[0]
        truth = ibug68_to_kaggle15(pts)
        out[name] = float((np.linalg.norm(face.keypoints_px - truth, axis=1) / interocular_distance(truth)).mean())
    return out


def person_bootstrap(diff: dict[str, float], rounds: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% interval of the mean per-frame difference, resampling whole people."""
    by_person: dict[str, list[float]] = {}
    for name, d in diff.items():
        by_person.setdefault(person_of(name), []).append(d)
    groups = list(by_person.values())
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(rounds):
        picked = [groups[i] for i in rng.integers(0, len(groups), len(groups))]
        means.append(np.mean(np.concatenate(picked)))
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("models", nargs="+", help=".keras files (their ONNX twins beside them); the first is the baseline")
    p.add_argument("--frames", required=True)
    p.add_argument("--people", choices=("val", "test"), default="val")
    args = p.parse_args()
    card = read_card(args.models[0]).data
    people = card.val_people if args.people == "val" else card.test_people
    if not people:
        raise SystemExit(f"{args.models[0]}'s card lists no {args.people} people")
    results = {m: frame_nmes(m, args.frames, people) for m in args.models}
    print(f"{len(people)} {args.people} people, flip-averaged, no re-centring")
    print("| model | NME | median frame | frames > 0.10 | detected |")
    print("|---|---|---|---|---|")
    for m, r in results.items():
        v = np.array([x for x in r.values() if not np.isnan(x)])
        print(f"| {m} | {v.mean():.4f} | {np.median(v):.4f} | {(v > FAILURE_NME).mean():.2%} "
              f"({(v > FAILURE_NME).sum()}) | {len(v)}/{len(r)} |")
    base = results[args.models[0]]
    for m in args.models[1:]:
        both = {n: results[m][n] - base[n] for n in base if not (np.isnan(base[n]) or np.isnan(results[m][n]))}
        low, high = person_bootstrap(both)
        mean = float(np.mean(list(both.values())))
        print(f"{m} - {args.models[0]}: NME {mean:+.4f} on {len(both)} frames, 95% interval (people resampled) "
              f"[{low:+.4f}, {high:+.4f}] ({mean / np.mean([base[n] for n in both]):+.1%})")


if __name__ == "__main__":
    main()
