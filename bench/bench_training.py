"""Training throughput (img/s) and the projected wall time of a full run, for the original recipe, the
studio preset and the default preset, in float32 and in bfloat16, measured in the same run, with the CPU
flags that decide which one a run uses (trainer.precision), and the float32 minutes scaled to a 2-core
AVX2-only EPYC by how fast this machine trains the studio model against that CPU's measured rate.

    python bench/bench_training.py [--presets full,studio,adapt] [--rows 2750] [--precisions float32,bfloat16] [--where]
    ONEDNN_MAX_CPU_ISA=AVX2 python bench/bench_training.py   # oneDNN capped at AVX2: as on a CPU without bf16

Times model.fit on augmented batches (the trainer's own pipeline, each preset's model, loss and
augmentation) at every batch size the preset's stages use, after a warm-up, then projects the
preset's main stages over `rows` training rows (no pseudo stages: the YouTube-faces data has no
incomplete rows). `--where` splits the default preset's batch-32 step: the input pipeline against the
training step, each conv block's share (multiply-adds, and the time of models cut after each block),
and the same step at half the widths.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from core.model import normalise_keypoints, to_model_input
from trainer.architecture import build_model
from trainer.augment import augment_batch
from trainer.config import DEFAULT_PRESET, RecipeConfig, config_for
from trainer.losses import make_loss
from trainer.precision import choose_precision
from trainer.recipe import augmented_batches
from trainer.synthetic import synthetic_faces

PRECISIONS = ("float32", "bfloat16")
#: The studio preset's model, float32, batch 32, on a 2-core AMD EPYC with AVX2 only (no AVX-512, no bf16), as
#: issue 24 measured it: the reference that turns this machine's float32 projections into that CPU's.
AVX2_EPYC_STUDIO_IMG_S = 24.9


def projected_minutes(config: RecipeConfig, mixed: bool, rows: int, images: int) -> tuple[dict[int, float], float]:
    """img/s per batch size, and the minutes the config's main stages take over `rows` rows."""
    import keras

    model = build_model(config.widths, config.dropout, config.head, mixed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=make_loss(config.loss))
    data = synthetic_faces(images)
    stages = config.stages(has_incomplete=False)
    rates = {}
    for batch in sorted({s.batch for s in stages}):
        seq = augmented_batches(data, batch, config.augment, 0)
        model.fit(seq, epochs=1, steps_per_epoch=2, verbose=0)  # warm-up / trace
        started = time.perf_counter()
        model.fit(seq, epochs=1, verbose=0)
        rates[batch] = images / (time.perf_counter() - started)
    return rates, sum(s.epochs * rows / rates[s.batch] for s in stages) / 60


def block_macs(widths: tuple[int, ...], head: str, side: int = 96) -> list[float]:
    """Multiply-adds per image of each 3x3 conv block (the trunk is nearly all of the model's arithmetic)."""
    macs: list[float] = []
    channels = 1
    for block, width in enumerate(widths):
        macs.append(side * side * 9 * channels * width)
        channels = width
        if head != "softargmax" or block < len(widths) - 1:
            side //= 2
    return macs


def step_ms(model, x: np.ndarray, y: np.ndarray, repeats: int) -> float:
    """Median ms of one training step on a fixed batch (no input pipeline)."""
    for _ in range(2):
        model.train_on_batch(x, y)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - started)
    return float(np.median(times)) * 1000


def where_the_time_goes(config: RecipeConfig, mixed: bool, batch: int = 32, repeats: int = 5) -> None:
    """The input pipeline against the training step; each block's share; the step at half the widths."""
    import keras

    data = synthetic_faces(batch)
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for _ in range(repeats):
        images, keypoints = augment_batch(data.images, data.keypoints, rng, config.augment)
        x, y = to_model_input(images), normalise_keypoints(keypoints)
    pipeline = (time.perf_counter() - started) / repeats * 1000
    model = build_model(config.widths, config.dropout, config.head, mixed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=make_loss(config.loss))
    full = step_ms(model, x, y, repeats)
    print(f"  batch {batch}: input pipeline {pipeline:.1f} ms, training step {full:.1f} ms "
          f"(pipeline {pipeline / full:.1%} of the step)")
    macs = block_macs(config.widths, config.head)
    cut_ms = []
    for k in range(1, len(config.widths) + 1):  # the trunk cut after block k, pooled to the 30 outputs
        trunk = build_model(config.widths[:k], config.dropout, "gap", mixed)
        trunk.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
        cut_ms.append(step_ms(trunk, x, y, repeats))
    print(f"  {'block':>5s} {'width':>5s} {'MMAC/img':>9s} {'share':>6s} {'step ms (cut after)':>20s} {'added ms':>8s}")
    for k, (width, mac) in enumerate(zip(config.widths, macs, strict=True)):
        added = cut_ms[k] - (cut_ms[k - 1] if k else 0.0)
        print(f"  {k + 1:5d} {width:5d} {mac / 1e6:9.1f} {mac / sum(macs):6.1%} {cut_ms[k]:20.1f} {added:8.1f}")
    print(f"  head {config.head}: full step {full:.1f} ms against {cut_ms[-1]:.1f} ms for the trunk + gap head")
    half = tuple(max(1, w // 2) for w in config.widths)
    narrow = build_model(half, config.dropout, config.head, mixed)
    narrow.compile(optimizer=keras.optimizers.Adam(1e-3), loss=make_loss(config.loss))
    half_ms = step_ms(narrow, x, y, repeats)
    print(f"  half widths {'->'.join(map(str, half))}: step {half_ms:.1f} ms ({full / half_ms:.2f}x faster), "
          f"{sum(block_macs(half, config.head)) / sum(macs):.0%} of the multiply-adds")


def _first_line(exc: Exception) -> str:
    """The line of a TensorFlow error that says what failed (its message starts with the graph's node)."""
    lines = [line.strip() for line in str(exc).splitlines() if "message:" in line or "Status" in line]
    return (lines[0] if lines else str(exc).strip().splitlines()[0])[:200]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--presets", default=",".join(dict.fromkeys(("full", "studio", DEFAULT_PRESET))),
                   help="comma-separated trainer.recipe.PRESETS names")
    p.add_argument("--precisions", default=",".join(PRECISIONS), help="float32, bfloat16 or both")
    p.add_argument("--rows", type=int, default=2750, help="training rows (2750 = YouTube-faces person split)")
    p.add_argument("--images", type=int, default=1024, help="images timed per batch size")
    p.add_argument("--widths", type=lambda s: tuple(int(v) for v in s.split(",")), help="override the presets' widths")
    p.add_argument("--where", action="store_true", help="where the default preset's step time goes")
    args = p.parse_args()
    auto = choose_precision()
    print(f"CPU flags: {' '.join(auto.cpu_flags) or 'none of ' + ', '.join(('avx2', 'avx512f', 'avx512_bf16'))}; "
          f"{os.cpu_count()} cpus; ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', '(not set)')}")
    print(f"auto precision: {auto.reason}")
    results: dict[tuple[str, str], float] = {}
    studio_float32_rate: dict[str, float] = {}  # the studio model's float32 batch-32 img/s, when a preset timed it
    for preset in args.presets.split(","):
        config = config_for(preset)
        if args.widths:
            config = dataclasses.replace(config, widths=args.widths)
        epochs = len(config.stages(has_incomplete=False)) * config.epochs_per_stage
        choice = auto.compute if config.mixed_precision == "auto" else PRECISIONS[bool(config.mixed_precision)]
        print(f"preset {preset}: widths {'->'.join(map(str, config.widths))}, head {config.head}, loss {config.loss}, "
              f"{epochs} epochs; its precision here: {choice} (mixed_precision={config.mixed_precision!r})")
        for precision in args.precisions.split(","):
            try:
                rates, minutes = projected_minutes(config, precision == "bfloat16", args.rows, args.images)
            except Exception as exc:  # e.g. oneDNN capped below bf16 (ONEDNN_MAX_CPU_ISA) has no bf16 convolution
                if not type(exc).__module__.startswith("tensorflow"):
                    raise
                print(f"  {precision:8s} fails here: {type(exc).__name__}: {_first_line(exc)}")
                continue
            for batch, rate in rates.items():
                print(f"  {precision:8s} batch {batch:4d}: {rate:7.1f} img/s")
            if precision == "float32" and preset == "studio" and not args.widths:  # the calibration: that CPU's
                studio_float32_rate["rate"] = rates[32]                              # measured model and batch
            print(f"  {precision:8s} projected full run over {args.rows} rows: {minutes:.1f} min on this machine"
                  + ("  <- the preset's choice" if precision == choice else ""))
            results[(preset, precision)] = minutes
        if all((preset, p) in results for p in PRECISIONS):
            ratio = results[(preset, "bfloat16")] / results[(preset, "float32")]
            print(f"  bfloat16 / float32: {ratio:.2f}x the wall time")
        results[(preset, "chosen")] = results.get((preset, choice), float("nan"))
        if args.where and preset == DEFAULT_PRESET:
            print(f"where {preset}'s time goes ({choice}):")
            where_the_time_goes(config, choice == "bfloat16")
    full = results.get(("full", "chosen"))
    for (preset, kind), minutes in results.items():
        if kind == "chosen" and preset != "full":
            versus = f", {minutes / full:.2f}x the full recipe's" if full else ""
            print(f"{preset} in its precision: {minutes:.1f} min projected{versus}")
    # Another CPU's minutes: this machine's float32 minutes scaled by how much faster this machine trains the
    # studio model than that CPU did (float32 there: its bf16 is emulated, and `auto` picks float32).
    studio_rate = studio_float32_rate.get("rate")
    if studio_rate:
        scale = studio_rate / AVX2_EPYC_STUDIO_IMG_S
        print(f"on a 2-core AVX2-only EPYC (the studio preset's model at {AVX2_EPYC_STUDIO_IMG_S} img/s in float32 "
              f"there, {studio_rate:.1f} here: {scale:.2f}x; so studio's line is the calibration), float32:")
        for (preset, kind), minutes in results.items():
            if kind == "float32":
                goal = "  (goal for the default preset: <= 30 min)" if preset == DEFAULT_PRESET else ""
                print(f"  {preset}: ~{minutes * scale:.0f} min{goal}")


if __name__ == "__main__":
    main()
