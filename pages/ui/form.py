"""What the training page's fields mean, as plain functions (tested without Streamlit): text fields
parsed into recipe values with messages a person understands, the registry as a table to read, and
the loss chart's axes chosen from the numbers it shows."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd

from trainer.presets import ACTIVE_MODEL, PRESETS

if TYPE_CHECKING:
    from core.card import ModelCard

MISSING = "—"

#: The presets the page offers (trainer.recipe.PRESETS), as a person reads them.
PRESET_LABELS = {"adapt": "Adapt the active model (default)", "studio": "Studio (from random weights)",
                 "full": "Full recipe", "quick": "Quick check (seconds)"}
PRESET_HELP = {"adapt": "starts from the model the app uses and trains it on this data for 8 short epochs with the "
                        "studio levers: a good model in a fraction of the time (README, 'Training on the CPUs people "
                        "have')",
               "studio": "the recipe plus the levers that won on validation people (README, 'Training levers'), "
                         "from random weights",
               "full": "the original recipe, every number as published",
               "quick": "two tiny stages, to try the pipeline end to end"}
#: Presets that train the active model further: their fine-tune toggle stays on.
PRESETS_FROM_ACTIVE_MODEL = tuple(p for p, fields in PRESETS.items() if fields.get("init_from") == ACTIVE_MODEL)
HEAD_LABELS = {"gap": "Global average pooling (the recipe)", "flatten": "Flatten (keeps the 3x3 layout)",
               "softargmax": "Heatmaps + soft-argmax"}
PRECISION_LABELS: dict[bool | str, str] = {"auto": "Auto: bfloat16 where the CPU computes it", True: "bfloat16",
                                           False: "float32"}
PRECISION_HELP = ("bfloat16 is faster only on CPUs with bf16 instructions (AMX, AVX-512 BF16); elsewhere it is "
                  "emulated, several times slower than float32. Auto decides per machine (trainer/precision.py); "
                  "the saved model is float32 either way")
LOSS_LABELS = {"mse": "MSE (the recipe)", "l1": "L1", "wing": "Wing"}
LOSS_HELP = ("MSE: mean squared error, the recipe's; L1: mean absolute error; Wing: logarithmic for errors "
             "under 10 crop px and L1 above, so small errors count more (trainer/losses.py)")


def parse_widths(text: str) -> tuple[int, ...]:
    """'32,64,128' -> (32, 64, 128): the five convolution widths of the model."""
    try:
        widths = tuple(int(w) for w in text.replace(" ", "").split(",") if w)
    except ValueError:
        raise ValueError(f"Model widths must be whole numbers separated by commas (e.g. 32,64,128,256,512), "
                         f"not {text!r}.") from None
    if not widths or min(widths) < 1:
        raise ValueError("Model widths must be positive whole numbers, e.g. 32,64,128,256,512.")
    return widths


def parse_test_size(text: str) -> int | float:
    """'500' -> 500 held-out rows; '0.1' -> a tenth of the complete rows. Whole people are held out either way."""
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"Held-out test rows must be a row count (e.g. 500) or a fraction below 1 (e.g. 0.1), "
                         f"not {text!r}.") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError("Held-out test rows must be more than 0: a row count (e.g. 500) or a fraction (e.g. 0.1).")
    if value < 1:
        return value
    if value != int(value):
        raise ValueError(f"A held-out row count must be a whole number, not {text!r}.")
    return int(value)


def stage_grid(learning_rates: list[float], batch_sizes: list[int]) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """The recipe's stage order: learning rates from high to low, batch sizes from small to large."""
    if not learning_rates or not batch_sizes:
        raise ValueError("Choose at least one learning rate and one batch size.")
    return tuple(sorted(learning_rates, reverse=True)), tuple(sorted(batch_sizes))


def registry_table(runs: pd.DataFrame, active_run: str | None) -> pd.DataFrame:
    """runfolders.list_runs as a person reads it: an "active" mark on `active_run` (core.registry.active_run),
    numbers rounded, and "—" where a run has no value yet (not None or NaN)."""
    table = runs.copy()
    table.insert(0, "active", ["✔ active" if r == active_run else "" for r in table["run"]])
    formats = {"train rows": "{:.0f}", "test RMSE px": "{:.2f}", "NME": "{:.4f}", "wall s": "{:.0f}"}
    for column, fmt in formats.items():
        if column in table:
            table[column] = [fmt.format(v) if isinstance(v, (int, float)) and math.isfinite(v) else MISSING
                             for v in table[column]]
    if "problem" in table:  # most runs have none: an empty cell, not the word "None"
        table["problem"] = [p if isinstance(p, str) else "" for p in table["problem"]]
    return table


def default_test_size(complete_rows: int, recipe_rows: int = 500) -> str:
    """The held-out field's default: the recipe's row count where it is at most a tenth of the complete
    rows, else a tenth (a small file keeps rows to train on)."""
    return f"{recipe_rows}" if complete_rows >= 10 * recipe_rows else "0.1"


#: What each loss's numbers are (trainer.losses): the chart's y-axis title.
LOSS_UNITS = {"mse": "MSE (normalised coordinates)", "l1": "mean absolute error (normalised coordinates)",
              "wing": "wing loss (crop px)"}


def loss_axis_title(loss_names: list[str]) -> str:
    """The y-axis title for runs trained with these losses; runs with different losses share no unit."""
    names = sorted(set(loss_names))
    if len(names) == 1:
        return LOSS_UNITS.get(names[0], names[0])
    return "loss (" + " / ".join(names) + ", each in its own unit)"


def loss_axis(losses: pd.Series) -> dict:
    """Plotly y-axis settings for loss curves: log when the losses span more than a decade, else linear
    (a log axis over less than a decade only crowds its tick labels). Over three decades or more one
    tick per decade; over fewer, ticks at 1, 2 and 5 of each decade, so the axis never shows a single tick."""
    values = pd.to_numeric(losses, errors="coerce")
    values = values[values > 0]
    if len(values) and values.max() / values.min() > 10:
        return dict(type="log", dtick=1 if values.max() / values.min() >= 1000 else "D2")
    return dict(type="linear")


def epoch_axis(epochs: int) -> dict:
    """Plotly x-axis settings: whole epochs from 1, a little room either side, so one epoch is one visible point."""
    step = max(1, math.ceil(epochs / 12))
    return dict(range=[0.5, max(epochs, 1) + 0.5], tickmode="linear", tick0=1, dtick=step, title="epoch")


#: "Use this model" warns when a run's error is this many times the active model's.
MUCH_WORSE_RATIO = 1.25


def much_worse(card: ModelCard, active_card: ModelCard | None) -> str | None:
    """Why `card`'s model is much less accurate than the active model's (the same measure on both: held-out
    NME when both cards have it, else test RMSE on the crop), or None when it is not, or they cannot be compared."""
    measures = (("held-out NME", lambda c: c.end_to_end.nme, "{:.4f}"),
                ("test error", lambda c: c.metrics.test_rmse_px, "{:.2f} px"))
    if active_card is None:
        return None
    for label, read, fmt in measures:
        mine, theirs = read(card), read(active_card)
        if isinstance(mine, (int, float)) and isinstance(theirs, (int, float)) and theirs > 0:
            if mine > MUCH_WORSE_RATIO * theirs:
                return f"{label} {fmt.format(mine)} against {fmt.format(theirs)} ({mine / theirs:.1f}x)"
            return None
    return None
