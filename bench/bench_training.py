"""Training throughput (img/s) of the recipe's model and the full recipe's projected wall time.

    python bench/bench_training.py [--widths 32,64,128,256,512] [--rows 2760]

Times model.fit on augmented batches (the trainer's own pipeline) at batch 32/64/128 after a
warm-up, then projects the full recipe: 3 LRs x 3 batch sizes x 15 epochs over `rows` rows.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from core.model import DEFAULT_WIDTHS, build_model  # noqa: E402
from trainer.augment import AugmentConfig  # noqa: E402
from trainer.recipe import RecipeConfig, augmented_batches  # noqa: E402
from trainer.synthetic import synthetic_faces  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--widths", type=lambda s: tuple(int(v) for v in s.split(",")), default=DEFAULT_WIDTHS)
    p.add_argument("--rows", type=int, default=2760, help="training rows (2760 = YouTube-faces person split)")
    p.add_argument("--images", type=int, default=1024, help="images timed per batch size")
    args = p.parse_args()
    import keras

    model = build_model(args.widths)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    data = synthetic_faces(args.images)
    rates = {}
    for batch in (32, 64, 128):
        seq = augmented_batches(data, batch, AugmentConfig(), 0)
        model.fit(seq, epochs=1, steps_per_epoch=2, verbose=0)  # warm-up / trace
        t = time.perf_counter()
        model.fit(seq, epochs=1, verbose=0)
        rates[batch] = args.images / (time.perf_counter() - t)
    config = RecipeConfig()
    epochs_per_batch = len(config.learning_rates) * config.epochs_per_stage
    projected = sum(epochs_per_batch * args.rows / rates[b] for b in config.batch_sizes)
    print(f"widths {'->'.join(map(str, args.widths))}, augmented batches, {args.images} images per measurement")
    for b, r in rates.items():
        print(f"  batch {b:4d}: {r:7.1f} img/s")
    print(f"  full recipe (9 stages x 15 epochs x {args.rows} rows, no pseudo stages): "
          f"projected {projected / 60:.1f} min on this machine")


if __name__ == "__main__":
    main()
