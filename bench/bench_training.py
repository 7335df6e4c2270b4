"""Training throughput (img/s) and the projected wall time of a full run, for the original recipe
and the default preset, measured in the same run.

    python bench/bench_training.py [--presets full,studio] [--rows 2750]

Times model.fit on augmented batches (the trainer's own pipeline, each preset's model, loss,
precision and augmentation) at every batch size the preset's stages use, after a warm-up, then
projects the preset's main stages over `rows` training rows (no pseudo stages: the YouTube-faces
data has no incomplete rows).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from trainer.architecture import build_model  # noqa: E402
from trainer.config import DEFAULT_PRESET, config_for  # noqa: E402
from trainer.losses import make_loss  # noqa: E402
from trainer.recipe import augmented_batches  # noqa: E402
from trainer.synthetic import synthetic_faces  # noqa: E402


def projected_minutes(preset: str, rows: int, images: int) -> tuple[dict[int, float], float]:
    """img/s per batch size, and the minutes the preset's main stages take over `rows` rows."""
    import keras

    config = config_for(preset)
    model = build_model(config.widths, config.dropout, config.head, config.mixed_precision)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=make_loss(config.loss))
    data = synthetic_faces(images)
    stages = config.stages(has_incomplete=False)
    rates = {}
    for batch in sorted({s["batch"] for s in stages}):
        seq = augmented_batches(data, batch, config.augment, 0)
        model.fit(seq, epochs=1, steps_per_epoch=2, verbose=0)  # warm-up / trace
        started = time.perf_counter()
        model.fit(seq, epochs=1, verbose=0)
        rates[batch] = images / (time.perf_counter() - started)
    return rates, sum(s["epochs"] * rows / rates[s["batch"]] for s in stages) / 60


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--presets", default=f"full,{DEFAULT_PRESET}", help="comma-separated trainer.recipe.PRESETS names")
    p.add_argument("--rows", type=int, default=2750, help="training rows (2750 = YouTube-faces person split)")
    p.add_argument("--images", type=int, default=1024, help="images timed per batch size")
    args = p.parse_args()
    results = {}
    for preset in args.presets.split(","):
        rates, minutes = projected_minutes(preset, args.rows, args.images)
        config = config_for(preset)
        epochs = len(config.stages(has_incomplete=False)) * config.epochs_per_stage
        print(f"preset {preset}: widths {'->'.join(map(str, config.widths))}, head {config.head}, loss {config.loss}, "
              f"{'bfloat16' if config.mixed_precision else 'float32'}, {epochs} epochs")
        for batch, rate in rates.items():
            print(f"  batch {batch:4d}: {rate:7.1f} img/s")
        print(f"  projected full run over {args.rows} rows: {minutes:.1f} min on this machine")
        results[preset] = minutes
    if "full" in results and len(results) > 1:
        for preset, minutes in results.items():
            if preset != "full":
                print(f"{preset} / full recipe: {minutes / results['full']:.2f}x the wall time (goal: <= 30 min)")


if __name__ == "__main__":
    main()
