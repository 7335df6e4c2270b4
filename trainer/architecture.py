"""The keypoint CNN the recipe trains: the trunk, its heads, ensembles and the float32 inference copy.

Training code only: the app runs the ONNX twin of a saved model (core.model), so nothing here is
imported by core or the pages. Keras is imported inside each function, so importing this module
(e.g. for `HEADS` in the CLI's help) stays cheap.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from core.schema import CROP_SHAPE, NUM_KEYPOINTS

if TYPE_CHECKING:
    import keras

DEFAULT_WIDTHS: tuple[int, ...] = (32, 64, 128, 256, 512)
DROPOUT_RATE = 0.2
DROPOUT_BLOCKS = 3


#: Heads on the trunk. "gap" is the recipe's (global average pooling: position is left for the
#: channels to encode); "flatten" keeps the last feature map's 3x3 layout; "softargmax" reads each
#: keypoint as the expected position under a softmax heatmap on the trunk's last map, pooled once
#: less (6x6), built from stock layers only so safe_mode loading and the ONNX export need nothing custom.
HEADS: tuple[str, ...] = ("gap", "flatten", "softargmax")


#: Name of the auxiliary 68-point output (build_model's aux68); inference_copy drops it.
AUX68_OUTPUT = "aux68"


def build_model(widths: Sequence[int] = DEFAULT_WIDTHS, dropout: float = DROPOUT_RATE, head: str = "gap",
                mixed_precision: bool = False, aux68: bool = False, read15: bool = False) -> keras.Model:
    """The recipe's loosely-VGG16 CNN: one 3x3 conv + batch norm + ReLU + max-pool per width,
    dropout in the first three blocks, then a head (HEADS) to 30 outputs.

    mixed_precision: the trunk computes in bfloat16 (faster on CPUs with AMX/AVX-512 bf16); the
    outputs stay float32, and `inference_copy` turns the trained model into a plain float32 one.
    aux68: a second output, AUX68_OUTPUT, of the 68 iBUG points (136 values) from the same trunk by the same
    kind of head, so the 53 points the 15 are not read from still teach the trunk; only training uses it.
    read15 (with aux68): no 15-point head; the 15 are read from the 68 by core.schema.IBUG68_TO_KAGGLE15 (a
    frozen averaging layer), so the 15-point output keeps the 68-point head and all its points share one fit."""
    import keras
    from keras import layers

    if head not in HEADS:
        raise ValueError(f"head must be one of {', '.join(HEADS)} (got {head!r})")
    policy = "mixed_bfloat16" if mixed_precision else None
    inputs = keras.Input(CROP_SHAPE, name="face")
    x = conv_blocks(inputs, widths, dropout, dtype=policy, pool_last=head != "softargmax")
    if read15 and not aux68:
        raise ValueError("reading the 15 points from the 68 needs the 68-point head (aux68)")
    if head == "softargmax" and read15:
        aux = _softargmax_head(x, 68, prefix=f"{AUX68_OUTPUT}_", output=AUX68_OUTPUT)
        outputs = _kaggle15_of(aux)
    elif head == "softargmax":
        outputs = _softargmax_head(x)
        aux = _softargmax_head(x, 68, prefix=f"{AUX68_OUTPUT}_", output=AUX68_OUTPUT) if aux68 else None
    else:
        x = layers.GlobalAveragePooling2D(name="gap", dtype=policy)(x) if head == "gap" else \
            layers.Flatten(name="flatten", dtype=policy)(x)
        aux = layers.Dense(68 * 2, name=AUX68_OUTPUT, dtype="float32")(x) if aux68 else None
        if read15:
            outputs = _kaggle15_of(aux)
        else:
            outputs = layers.Dense(NUM_KEYPOINTS * 2, name="keypoints", dtype="float32")(x)
    return keras.Model(inputs, outputs if aux is None else [outputs, aux], name="facial_keypoints")


def _kaggle15_of(points68: Any) -> Any:
    """(136,) iBUG x, y values -> (30,) Kaggle ones: each Kaggle point the mean of its iBUG points, a frozen
    Dense on the coordinate axis (stock layers: safe_mode loading and ONNX export need nothing custom)."""
    import keras
    from keras import layers

    from core.schema import IBUG68_TO_KAGGLE15, KEYPOINT_NAMES

    mean = np.zeros((68, NUM_KEYPOINTS), np.float32)
    for k, name in enumerate(KEYPOINT_NAMES):
        mean[list(IBUG68_TO_KAGGLE15[name]), k] = 1 / len(IBUG68_TO_KAGGLE15[name])
    per_axis = layers.Permute((2, 1), name="read15_axes")(layers.Reshape((68, 2), name="read15_points")(points68))
    read = layers.Dense(NUM_KEYPOINTS, use_bias=False, trainable=False, name="read15",
                        kernel_initializer=keras.initializers.Constant(mean))(per_axis)  # (2, 15)
    return layers.Flatten(name="keypoints")(layers.Permute((2, 1), name="read15_points15")(read))


def _softargmax_head(features: Any, points: int = NUM_KEYPOINTS, prefix: str = "", output: str = "keypoints") -> Any:
    """One heatmap per keypoint (1x1 conv), softmax over its cells, then the expected (x, y) in the
    normalised output units: a frozen Dense whose kernel holds each cell centre's coordinates."""
    import keras
    from keras import layers

    side = int(features.shape[1])
    heatmaps = layers.Conv2D(points, 1, name=f"{prefix}heatmaps", dtype="float32")(features)
    flat = layers.Reshape((side * side, points), name=f"{prefix}cells")(heatmaps)
    probabilities = layers.Softmax(axis=1, name=f"{prefix}softmax")(flat)
    per_keypoint = layers.Permute((2, 1), name=f"{prefix}per_keypoint")(probabilities)  # (points, cells)
    centres = (np.arange(side, dtype=np.float32) + 0.5) / side * 2 - 1  # cell centres in [-1, 1]
    grid_y, grid_x = np.meshgrid(centres, centres, indexing="ij")
    expect = layers.Dense(2, use_bias=False, trainable=False, name=f"{prefix}expected_xy",
                          kernel_initializer=keras.initializers.Constant(np.stack([grid_x.ravel(), grid_y.ravel()], 1)))
    return layers.Flatten(name=output)(expect(per_keypoint))  # x, y per keypoint in schema order


def average_models(models: Sequence[keras.Model]) -> keras.Model:
    """One model whose output is the mean of `models`' outputs: an ensemble that saves as one `.keras` file
    and runs as one ONNX graph, so every caller of a keypoint model runs it unchanged."""
    import keras
    from keras import layers

    inputs = keras.Input(CROP_SHAPE, name="face")
    members = [keras.Model(m.inputs[0], m.outputs[0], name=f"member{i + 1}")(inputs) for i, m in enumerate(models)]
    return keras.Model(inputs, layers.Average(name="keypoints_mean")(members), name="facial_keypoints_ensemble")


def conv_blocks(x: Any, widths: Sequence[int], dropout: float = 0.0, dropout_blocks: int = DROPOUT_BLOCKS,
                dtype: str | None = None, pool_last: bool = True) -> Any:
    """One 3x3 conv + batch norm + ReLU + 2x2 max-pool per width (dropout after the first
    `dropout_blocks`; no pool after the last block when `pool_last` is False): the trunk of the
    keypoint model and of the face verifier (trainer.verifier).
    `dtype`: a Keras dtype policy such as "mixed_bfloat16"."""
    from keras import layers

    for block, width in enumerate(widths):
        x = layers.Conv2D(int(width), 3, padding="same", use_bias=False, name=f"conv{block + 1}", dtype=dtype)(x)
        x = layers.BatchNormalization(name=f"bn{block + 1}", dtype=dtype)(x)
        x = layers.ReLU(name=f"relu{block + 1}", dtype=dtype)(x)
        if pool_last or block < len(widths) - 1:
            x = layers.MaxPooling2D(name=f"pool{block + 1}", dtype=dtype)(x)
        if block < dropout_blocks and dropout > 0:
            x = layers.Dropout(dropout, name=f"dropout{block + 1}", dtype=dtype)(x)
    return x


def inference_copy(model: keras.Model) -> keras.Model:
    """The same architecture and weights without optimizer state (a third of the file size), computing in
    float32 (a mixed-precision model's inference twin), and without the auxiliary 68-point output: the
    shipped model is the 15-point one, at the per-face cost of a model trained without it."""
    import keras

    def plain(node):
        if isinstance(node, dict):
            if node.get("class_name") == "DTypePolicy":
                return {**node, "config": {**node.get("config", {}), "name": "float32"}}
            return {k: plain(v) for k, v in node.items()}
        return [plain(v) for v in node] if isinstance(node, list) else node

    copy = keras.Model.from_config(plain(model.get_config()))
    copy.set_weights(model.get_weights())
    if len(copy.outputs) > 1:  # only layers on the path to the first output stay
        copy = keras.Model(copy.inputs, copy.outputs[0], name=copy.name)
    return copy
