"""Every label used: the recipe on data shaped like Kaggle's (trainer.partial), each way of using the
incomplete rows trained on the same short schedule and preset, measured on the validation people.

    python -m trainer kaggle-shape data/youtube68.csv.gz --out data/yt68-kaggle.csv.gz
    python bench/bench_labels.py --frames ../shared/data/youtube-faces-68/training.zip [--only masked] [--epochs 3]

Rows (each one run under runs/labels-<epochs>ep/, resumable: rerun the command and finished rows are read back):
  complete  (a) the complete rows only (the Kaggle-shaped file, no pseudo-labelling)
  pseudo    (b) the recipe's pseudo-labelling as written: main stages on the complete rows, the model fills
            the incomplete rows' missing points, pseudo stages on all, a final stage on the complete rows
  masked    (c) every row in every stage, the loss masked to each row's labelled points
  all15     (d) the upper bound: the complete file, all 15 points on every row
  complete_steps  (a) for as many steps as masked takes: does masked win by its 4-point rows or by more steps?
Prints validation NME (end to end, flip-averaged), frames above 0.10, and the recipe's own unit: MSE of
the coordinates normalised to [-1, 1] on the validation crops.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from core.card import read_card
from core.model import normalise_keypoints
from trainer.config import RecipeConfig, config_for
from trainer.data import read_kaggle_csv
from trainer.evaluate import evaluate_frames
from trainer.events import EPOCH_END, PSEUDO_LABELS, RUN_START, read_events
from trainer.export import load_keras_model
from trainer.recipe import make_split, predict_keypoints, train

#: bench_levers' short schedule: 2 stages x 6 epochs (--epochs) at batch 32, from random weights; the pseudo row
#: adds the recipe's pseudo and final stages (as many epochs each).
SHORT = dict(learning_rates=(1e-3, 1e-4), batch_sizes=(32,), test_size=0.1)
ROWS: dict[str, tuple[str, dict]] = {  # name: (which file, RecipeConfig fields)
    "complete": ("partial", dict(pseudo_label=False)),
    "pseudo": ("partial", dict(pseudo_label=True)),
    "masked": ("partial", dict(pseudo_label=False, masked_loss=True)),
    "all15": ("complete", dict(pseudo_label=False)),
    "complete_steps": ("partial", dict(pseudo_label=False, same_steps_as_masked=True)),
}


def recipe_mse(model_path: Path, config: RecipeConfig) -> float:
    """The recipe's unit: MSE of normalised coordinates on the validation crops of the run's split."""
    split = make_split(read_kaggle_csv(config.data), config)
    predicted = predict_keypoints(load_keras_model(model_path), split.val.images)
    return float(np.mean((normalise_keypoints(predicted) - normalise_keypoints(split.val.keypoints)) ** 2))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--frames", required=True, help="68-point frames (the data's source), for end-to-end NME")
    p.add_argument("--data", default="data/youtube68.csv.gz", help="the complete imported file")
    p.add_argument("--partial", default="data/yt68-kaggle.csv.gz", help="its Kaggle-shaped twin (trainer kaggle-shape)")
    p.add_argument("--preset", default="studio")
    p.add_argument("--epochs", type=int, default=6, help="epochs per stage (default %(default)s)")
    p.add_argument("--widths", type=lambda v: tuple(int(w) for w in v.split(",")),
                   help="override the preset's widths, e.g. 16,32,64,128,256 (runs: runs/labels-<epochs>ep-w<first>)")
    p.add_argument("--runs", help="where the runs go (default runs/labels-<epochs>ep)")
    p.add_argument("--only", help="comma-separated row names (default: all)")
    args = p.parse_args()
    names = args.only.split(",") if args.only else list(ROWS)
    schedule = dict(SHORT, epochs_per_stage=args.epochs, **({"widths": args.widths} if args.widths else {}))
    runs = Path(args.runs or f"runs/labels-{args.epochs}ep" + (f"-w{args.widths[0]}" if args.widths else ""))
    rows = {}
    for name in names:
        source, fields = ROWS[name]
        fields = dict(fields)
        data = args.partial if source == "partial" else args.data
        if fields.pop("same_steps_as_masked", False):  # epochs scaled by (all training rows / complete rows)
            split = make_split(read_kaggle_csv(data), config_for(args.preset, data=data, **schedule))
            scale = (len(split.train) + len(split.incomplete)) / len(split.train)
            fields["epochs_per_stage"] = round(args.epochs * scale)
        config = config_for(args.preset, data=data, **{**schedule, **fields})
        run_dir = runs / name
        card = read_card(run_dir / "model.keras") if (run_dir / "model.keras").is_file() else train(config, run_dir)
        events = read_events(run_dir / "events.jsonl")
        epoch_s = [e["epoch_s"] for e in events if e["event"] == EPOCH_END]
        pseudo = next((e for e in events if e["event"] == PSEUDO_LABELS), None)
        incomplete = next(e for e in events if e["event"] == RUN_START)["incomplete_rows"]
        scores = evaluate_frames(run_dir / "model.keras", args.frames, people=card.data.val_people,
                                 flip_average=True, recentre=False)
        rows[name] = dict(nme=scores["nme"], above=scores["frames_above_0.10"],
                          mse=recipe_mse(run_dir / "model.keras", config),
                          epochs=len(epoch_s), train_min=sum(epoch_s) / 60, rows=card.data.train_rows,
                          incomplete=incomplete if config.masked_loss or config.pseudo_label else 0,
                          pseudo=pseudo["rows"] if pseudo else 0,
                          precision=card.config.get("precision", {}).get("compute"))
        print(f"{name}: {rows[name]}", flush=True)
    print(f"\nvalidation people, flip-averaged, no re-centring; preset {args.preset}, schedule {schedule}")
    print(f"{'row':9s} {'NME':>7s} {'>0.10':>6s} {'MSE [-1,1]':>11s} {'epochs':>6s} {'train min':>9s} "
          f"{'complete rows':>13s} {'incomplete used':>15s} {'pseudo-labelled':>15s} precision")
    for name, r in rows.items():
        print(f"{name:9s} {r['nme']:7.4f} {r['above']:6.3f} {r['mse']:11.5f} {r['epochs']:6d} {r['train_min']:9.1f} "
              f"{r['rows']:13d} {r['incomplete']:15d} {r['pseudo']:15d} {r['precision']}")


if __name__ == "__main__":
    main()
