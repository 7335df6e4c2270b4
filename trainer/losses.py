"""Training losses on the model's normalised outputs (crop px = 48 * value + 48).

"mse" is the recipe's. "l1" and "wing" weigh small errors more than squared error does, which is
what landmark precision needs (Feng et al., "Wing Loss for Robust Facial Landmark Localisation
with Convolutional Neural Networks", CVPR 2018): wing is logarithmic below `width` crop pixels and
L1 above it. Keras is imported only when a loss is made: `python -m trainer --help` stays fast.

`masked=True` makes any of them ignore missing targets (NaN): a row that labels 4 of the 15 points
(Kaggle's incomplete rows, trainer.partial) teaches those 4 directly, and every labelled value weighs
the same in a batch, so on complete rows the masked loss equals the plain one.
"""
from __future__ import annotations

import functools
import math

from core.schema import CROP_HALF

LOSSES: tuple[str, ...] = ("mse", "l1", "wing")


def _per_value(name: str, y_true, y_pred):
    """The loss of every output value, before averaging (crop px inside wing)."""
    from keras import ops

    error = y_pred - ops.cast(y_true, y_pred.dtype)
    if name == "mse":
        return ops.square(error)
    if name == "l1":
        return ops.abs(error)
    width, curvature = 10.0, 2.0  # WingLoss's defaults
    error_px = ops.abs(error) * CROP_HALF
    offset = width - width * math.log1p(width / curvature)
    return ops.where(error_px < width, width * ops.log1p(error_px / curvature), error_px - offset)


@functools.cache
def masked_loss_class() -> type:
    """The MaskedLoss class (registered, so a checkpoint compiled with it loads in safe_mode)."""
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="fks")
    class MaskedLoss(keras.losses.Loss):
        """`kind` ("mse", "l1", "wing") over the labelled values only: NaN targets add nothing. Each row's
        value is scaled so that the batch mean is the mean over the batch's labelled values."""

        def __init__(self, kind: str = "mse", name: str | None = None, **kwargs):
            super().__init__(name=name or f"masked_{kind}", **kwargs)
            self.kind = kind

        def call(self, y_true, y_pred):
            y_true = ops.cast(y_true, y_pred.dtype)
            labelled = ops.logical_not(ops.isnan(y_true))
            weight = ops.cast(labelled, y_pred.dtype)
            per_value = _per_value(self.kind, ops.where(labelled, y_true, ops.zeros_like(y_true)), y_pred) * weight
            rows = ops.cast(ops.shape(y_true)[0], y_pred.dtype)
            return ops.sum(per_value, axis=-1) * rows / ops.maximum(ops.sum(weight), 1.0)

        def get_config(self) -> dict:
            return {**super().get_config(), "kind": self.kind}

    return MaskedLoss


@functools.cache
def masked_mse_metric():
    """The "mse" progress metric over labelled values (trainer.recipe reports it as RMSE in crop px)."""
    import keras

    @keras.saving.register_keras_serializable(package="fks")
    def masked_mse(y_true, y_pred):
        return masked_loss_class()("mse").call(y_true, y_pred)

    return masked_mse


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


def make_loss(name: str, masked: bool = False):
    """The Keras loss for a RecipeConfig.loss name; `masked`: NaN targets are ignored (MaskedLoss)."""
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)} (got {name!r})")
    if masked:
        return masked_loss_class()(name)
    if name == "mse":
        return "mse"
    if name == "l1":
        return "mean_absolute_error"
    if name == "wing":
        return wing_loss_class()()
    raise ValueError(f"loss must be one of {', '.join(LOSSES)} (got {name!r})")
