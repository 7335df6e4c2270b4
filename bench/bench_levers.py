"""Levers against identity overfitting, each trained on the same short schedule and measured end to
end on the validation people (never the test people), against the recipe in the same run.

    python bench/bench_levers.py --frames ../shared/data/youtube-faces-68/training.zip [--only wing,flatten]

Every lever is one run under runs/levers/ (resumable: rerun the command and finished levers are
read back, not retrained). Prints a table: validation NME, frames above 0.10, median frame, ms per
face (one crop through ONNX Runtime), training img/s (median epoch) and wall time, NME as a ratio
to the recipe's.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from bench_inference import median_ms

from core.card import read_card
from core.model import KeypointPredictor
from trainer.augment import ROBUST_AUGMENTATION
from trainer.config import config_for
from trainer.evaluate import evaluate_frames
from trainer.events import EpochEnd, load_events
from trainer.recipe import train

#: The short schedule every lever trains on from random weights: 2 stages x 6 epochs at batch 32 (about 5 min
#: each here), far from converged (the recipe reaches ~0.10 NME, its 135 epochs 0.062): it ranks how fast a
#: lever learns. With --init-from, each lever instead continues a converged model for 2 x 4 epochs at low
#: learning rates (architecture levers are skipped then): what a lever adds on top of the recipe's model.
SHORT = dict(learning_rates=(1e-3, 1e-4), batch_sizes=(32,), epochs_per_stage=6)
CONTINUATION = dict(learning_rates=(1e-4, 1e-5), batch_sizes=(32,), epochs_per_stage=4)
LEVERS: dict[str, tuple[dict, dict]] = {  # name: (RecipeConfig fields, AugmentConfig fields)
    "recipe": ({}, {}),
    "bf16": (dict(mixed_precision=True), {}),
    "wing": (dict(mixed_precision=True, loss="wing"), {}),
    "l1": (dict(mixed_precision=True, loss="l1"), {}),
    "flatten": (dict(mixed_precision=True, head="flatten"), {}),
    "softargmax": (dict(mixed_precision=True, head="softargmax"), {}),
    "augment": (dict(mixed_precision=True), ROBUST_AUGMENTATION),
    "wing+augment": (dict(mixed_precision=True, loss="wing"), ROBUST_AUGMENTATION),
}


def ms_per_face(model_path: Path, repeats: int = 300) -> float:
    """Median ms of one face through the model's float ONNX twin (bench_inference's timing)."""
    predictor = KeypointPredictor(model_path)
    crop = np.full((1, 96, 96), 128, np.uint8)
    return median_ms(lambda: predictor.predict_crops(crop), repeats)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--frames", required=True, help="68-point frames (the data's source), for end-to-end NME")
    p.add_argument("--data", default="data/youtube68.csv.gz")
    p.add_argument("--runs", default="runs/levers")
    p.add_argument("--only", help="comma-separated lever names (default: all, the recipe first)")
    p.add_argument("--init-from", help="a converged .keras model of the same split (e.g. models/keypoints.keras): "
                                       "continue it with each lever instead of training from random weights")
    args = p.parse_args()
    names = args.only.split(",") if args.only else list(LEVERS)
    schedule = dict(CONTINUATION, init_from=args.init_from) if args.init_from else SHORT
    rows = {}
    for name in names:
        fields, augment = LEVERS[name]
        if args.init_from and "head" in fields:
            print(f"{name}: skipped (a new head cannot continue {args.init_from})")
            continue
        config = config_for("full", augment, data=args.data, test_size=0.1, pseudo_label=False, **schedule, **fields)
        run_dir = Path(args.runs) / name
        card = read_card(run_dir / "model.keras") if (run_dir / "model.keras").is_file() else train(config, run_dir)
        # img/s and minutes from the median epoch: a run paused (SIGSTOP, for a quiet benchmark) keeps its speed
        epoch_s = [e.epoch_s for e in load_events(run_dir / "events.jsonl") if isinstance(e, EpochEnd)]
        scores = evaluate_frames(run_dir / "model.keras", args.frames, people=card.data.val_people,
                                 flip_average=True, recentre=False)
        rows[name] = dict(nme=scores["nme"], above=scores["frames_above_0.10"], median=scores["nme_median_frame"],
                          ms=ms_per_face(run_dir / "model.keras"), wall_min=len(epoch_s) * float(np.median(epoch_s)) / 60,
                          img_s=(card.data.train_rows or 0) / float(np.median(epoch_s)))
        print(f"{name}: {rows[name]}", flush=True)
    base = rows.get("recipe")
    print(f"\nvalidation people, flip-averaged, no re-centring; schedule {schedule}")
    print(f"{'lever':12s} {'NME':>7s} {'>0.10':>6s} {'median':>7s} {'ms/face':>8s} {'train min':>9s} {'img/s':>6s}"
          + ("   NME vs recipe" if base else ""))
    for name, r in rows.items():
        ratio = f"   {r['nme'] / base['nme']:.3f}x" if base else ""
        print(f"{name:12s} {r['nme']:7.4f} {r['above']:6.3f} {r['median']:7.4f} {r['ms']:8.2f} {r['wall_min']:9.1f} "
              f"{r['img_s']:6.0f}{ratio}")


if __name__ == "__main__":
    main()
