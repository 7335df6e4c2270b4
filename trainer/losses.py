"""Training losses on the model's normalised outputs (crop px = 48 * value + 48).

"mse" is the recipe's. "l1" and "wing" weigh small errors more than squared error does, which is
what landmark precision needs (Feng et al., "Wing Loss for Robust Facial Landmark Localisation
with Convolutional Neural Networks", CVPR 2018): wing is logarithmic below `width` crop pixels and
L1 above it. Keras is imported only when a loss is made: `python -m trainer --help` stays fast.
"""
from __future__ import annotations

import functools
import math

from core.schema import CROP_HALF

LOSSES: tuple[str, ...] = ("mse", "l1", "wing")


@functools.cache
def wing_loss_class() -> type:
    """The WingLoss class, registered as a Keras serializable so that a checkpoint compiled with it
    loads in safe_mode (call this before loading one)."""
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="fks")
    class WingLoss(keras.losses.Loss):
        """Wing loss with `width` and `curvature` (the paper's w and epsilon) in crop pixels."""

        def __init__(self, width: float = 10.0, curvature: float = 2.0, name: str = "wing", **kwargs):
            super().__init__(name=name, **kwargs)
            self.width, self.curvature = float(width), float(curvature)

        def call(self, y_true, y_pred):
            error_px = ops.abs(y_pred - ops.cast(y_true, y_pred.dtype)) * CROP_HALF
            offset = self.width - self.width * math.log1p(self.width / self.curvature)
            per_value = ops.where(error_px < self.width, self.width * ops.log1p(error_px / self.curvature),
                                  error_px - offset)
            return ops.mean(per_value, axis=-1)

        def get_config(self) -> dict:
            return {**super().get_config(), "width": self.width, "curvature": self.curvature}

    return WingLoss


def make_loss(name: str):
    """The Keras loss for a RecipeConfig.loss name."""
    if name == "mse":
        return "mse"
    if name == "l1":
        return "mean_absolute_error"
    if name == "wing":
        return wing_loss_class()()
    raise ValueError(f"loss must be one of {', '.join(LOSSES)} (got {name!r})")
