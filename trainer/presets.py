"""Named RecipeConfig overrides (`python -m trainer train --preset`, the training page's radio).

Kept apart from trainer.recipe so that the CLI lists them without importing Keras.
"""
from __future__ import annotations

from trainer.augment import ROBUST_AUGMENTATION

#: A preset's `init_from` that means "the model the app uses now" (core.registry.active_model_path): config_for
#: puts that file, and the widths and head of its card, in the config.
ACTIVE_MODEL = "active model"
#: The studio levers, shared by the presets that use them.
_STUDIO_LEVERS = dict(head="softargmax", mixed_precision="auto", loss="wing", augment=ROBUST_AUGMENTATION,
                      batch_sizes=(32,))

PRESETS: dict[str, dict] = {
    # The original recipe, every number as published. On YouTube-faces (2750 train rows, 2-core CPU):
    # 64 min, held-out NME 0.0756 with flip averaging (shipped v2).
    "full": {},
    # The same schedule at half the widths: 26 min, NME 0.083 with flip averaging (run shipped-v1).
    "fast": dict(widths=(16, 32, 64, 128, 256)),
    # Seconds, for trying the pipeline end to end: two tiny stages.
    "quick": dict(widths=(8, 16, 32, 64, 128), learning_rates=(1e-3,), batch_sizes=(32,), epochs_per_stage=1,
                  pseudo_stages=((1e-4, 32),), final_stages=((1e-4, 32),)),
    # A short continuation for --init-from (a trained model): lower learning rates, no pseudo stages.
    "finetune": dict(learning_rates=(1e-4, 1e-5), batch_sizes=(64,), epochs_per_stage=2, pseudo_label=False),
    # The recipe plus the levers that won on the validation people (bench/bench_levers.py, README): a
    # soft-argmax head, bfloat16 compute where the CPU has bf16 instructions (trainer.precision), one batch size,
    # 3 x 20 epochs (under half the recipe's time).
    "studio": dict(**_STUDIO_LEVERS, epochs_per_stage=20),
    # The default: the active model's weights (the shipped model unless another was made active) trained on the
    # chosen data with the studio levers, at its last learning rates (README, "Training on the CPUs people have").
    # Incomplete rows teach their labelled points in every stage (masked loss) instead of adding pseudo stages.
    "adapt": dict(**_STUDIO_LEVERS, learning_rates=(1e-4, 1e-5), epochs_per_stage=4, pseudo_label=False,
                  masked_loss=True, init_from=ACTIVE_MODEL),
}
PRESET_NAMES: tuple[str, ...] = tuple(PRESETS)
DEFAULT_PRESET = "adapt"
