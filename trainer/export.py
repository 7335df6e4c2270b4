"""`.keras` files in and out, and the ONNX twins the app runs (float and int8).

The app never imports Keras: core.model opens the ONNX twin beside a `.keras` file and refuses one
that is missing or was exported from other weights. Every command that writes or adopts a model
(train, ship, import-model, activate, twin) makes its twin here, tagged with the hash of its
`.keras` file (core.model.SOURCE_KEY), so a twin always says which weights it came from.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.files import atomic_path
from core.model import (
    SOURCE_KEY,
    ModelError,
    check_probe_outputs,
    file_sha256,
    no_model_file,
    onnx_path_for,
    probe_face_crops,
    to_model_input,
    twin_problem,
)
from core.schema import CROP_SHAPE, NUM_KEYPOINTS

if TYPE_CHECKING:
    import keras


def save_model(model: keras.Model, path: str | os.PathLike) -> Path:
    """Write `.keras` and its ONNX twin atomically (core.files.atomic_path): a crash never leaves half a model."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        model.save(str(tmp))
    export_onnx(model, onnx_path_for(path), source_sha256=file_sha256(path))
    return path


#: What a `.keras` file may hold before Keras reads it (it builds every layer the config declares, then
#: reads each weight array whole): the recipe's largest model has 1024-channel blocks and 6.4 MB of weights.
KERAS_MEMBER_LIMITS = {"config.json": 2**20, "metadata.json": 2**16, "model.weights.h5": 256 * 2**20}
MAX_LAYER_SIZE = 4096  # units, filters, kernel / pool sizes, shapes: any one value declared in the config
MAX_LAYERS = 2000  # objects with a class_name in the config (layers, initializers, policies...)
MAX_WEIGHT_BYTES = 256 * 2**20  # all weight arrays of model.weights.h5, at the shapes they declare
#: Config keys whose integers size a layer's allocations.
SIZE_KEYS = frozenset({"units", "filters", "kernel_size", "pool_size", "strides", "dilation_rate", "size",
                       "target_shape", "batch_shape", "shape", "input_dim", "output_dim", "dims", "num_heads",
                       "key_dim", "value_dim", "depth_multiplier", "n", "repeats", "cropping", "padding"})


def keras_file_problem(path: str | os.PathLike) -> str | None:
    """Why a `.keras` file must not be handed to Keras (a zip or config bomb), or None. Reads only the zip's
    directory, the config (at most 1 MB) and the weight file's array shapes: cheap, and before any allocation."""
    import h5py

    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            unexpected = sorted(i.filename for i in infos if i.filename not in KERAS_MEMBER_LIMITS)
            if unexpected:
                return f"it holds files a Keras model does not ({', '.join(unexpected[:3])})"
            for info in infos:
                if info.file_size > KERAS_MEMBER_LIMITS[info.filename]:
                    return (f"its {info.filename} is {info.file_size / 2**20:,.1f} MB uncompressed; the limit is "
                            f"{KERAS_MEMBER_LIMITS[info.filename] / 2**20:g} MB")
            if "config.json" not in archive.namelist():
                return "it has no config.json"
            with archive.open("config.json") as member:
                text = member.read(KERAS_MEMBER_LIMITS["config.json"] + 1)
            if len(text) > KERAS_MEMBER_LIMITS["config.json"]:
                return "its config.json is larger than 1 MB"
            problem = _config_problem(json.loads(text))
            if problem or "model.weights.h5" not in archive.namelist():
                return problem
            with archive.open("model.weights.h5") as member, h5py.File(member, "r") as weights:
                total = [0]
                weights.visititems(lambda _, item: total.__setitem__(0, total[0] + (
                    int(np.prod(item.shape, dtype=np.float64)) * item.dtype.itemsize
                    if isinstance(item, h5py.Dataset) and item.shape else 0)))
            if total[0] > MAX_WEIGHT_BYTES:
                return (f"its weight arrays declare {total[0] / 2**20:,.0f} MB; "
                        f"the limit is {MAX_WEIGHT_BYTES / 2**20:g} MB")
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, RecursionError, TypeError, zlib.error):
        return None  # not a readable model at all: Keras says so in its own words (load_keras_model)
    return None


def _config_problem(config: object) -> str | None:
    """A config declaring a layer size over MAX_LAYER_SIZE or more than MAX_LAYERS objects, in words, or None."""
    stack, objects = [config], 0
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            objects += "class_name" in item
            if objects > MAX_LAYERS:
                return f"its config declares more than {MAX_LAYERS} layers and objects"
            for key, value in item.items():
                sizes = value if isinstance(value, list) else [value]
                if key in SIZE_KEYS and any(isinstance(v, (int, float)) and not isinstance(v, bool)
                                            and abs(v) > MAX_LAYER_SIZE for v in sizes):
                    name = item.get("name", "a layer")
                    return f"its config declares {key}={value} in {name}; the limit is {MAX_LAYER_SIZE}"
                stack.append(value)
    return None


def load_keras_model(path: str | os.PathLike, output_size: int | None = NUM_KEYPOINTS * 2) -> keras.Model:
    """Load a `.keras` file with safe_mode (no arbitrary code), or raise ModelError saying why.

    `output_size`: what the model must output per crop (30 for a keypoint model, 1 for the face verifier's;
    None: any)."""
    path = Path(path)
    if not path.is_file():
        raise no_model_file(path)
    problem = keras_file_problem(path)
    if problem:
        raise ModelError(f"The model file {path.name} was refused before loading: {problem}.")
    import keras

    try:
        model = keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # keras raises many types (even FileNotFoundError) for a bad archive
        raise ModelError(f"The model file {path.name} is unreadable: it is not a valid .keras model "
                         f"({type(exc).__name__}). Train or activate another model.") from exc
    wrong_output = output_size is not None and model.output_shape[-1] != output_size
    if tuple(model.input_shape[1:]) != CROP_SHAPE or wrong_output:
        kind = "keypoint model" if output_size == NUM_KEYPOINTS * 2 else f"model with {output_size} output(s) per crop"
        raise ModelError(f"{path.name} is not a {kind}: input {model.input_shape}, output {model.output_shape}")
    return model


def validate_keras_model(keras_path: str | os.PathLike) -> None:
    """Refuse (ModelError) a `.keras` file that must never become a run's or the shipped model: missing, unreadable
    (safe_mode load), of the wrong shape, or whose keypoints on a test face are non-finite or outside the crop.

    The Keras-side twin of core.model.validate_model, for files whose ONNX twin cannot be trusted yet
    (an imported archive, a model about to be shipped)."""
    path = Path(keras_path)
    model = load_keras_model(path)
    try:
        outputs = np.asarray(model(to_model_input(probe_face_crops()), training=False))
    except Exception as exc:  # a model that loads but cannot run
        raise ModelError(f"{path.name} failed a test inference ({type(exc).__name__}): it cannot be used.") from exc
    check_probe_outputs(path.name, outputs)


def export_onnx(model: keras.Model, path: str | os.PathLike, source_sha256: str = "") -> Path:
    """Export through keras' ONNX exporter (tf2onnx) to a temp file, tag it with its source, rename into place
    (core.files.atomic_path)."""
    import onnx

    path = Path(path)
    model(np.zeros((1, *CROP_SHAPE), np.float32), training=False)  # exporter needs a built, called model
    with atomic_path(path) as tmp:
        model.export(str(tmp), format="onnx", verbose=False)
        graph = onnx.load(tmp)
        onnx.helper.set_model_props(graph, {SOURCE_KEY: source_sha256})
        onnx.save(graph, tmp)
    return path


def ensure_onnx_twin(keras_path: str | os.PathLike, output_size: int | None = None) -> bool:
    """Export the ONNX twin of `keras_path` when it is missing, unreadable or made from other weights.

    Returns whether it exported (False: the twin was already current). `output_size` as load_keras_model."""
    keras_path = Path(keras_path)
    if not keras_path.is_file():
        raise no_model_file(keras_path)
    if twin_problem(keras_path) is None:
        return False
    model = load_keras_model(keras_path, output_size)
    export_onnx(model, onnx_path_for(keras_path), source_sha256=file_sha256(keras_path))
    return True


def quantize_onnx(onnx_path: str | os.PathLike, calibration_crops: np.ndarray, out_path: str | os.PathLike,
                  source_sha256: str = "") -> Path:
    """A static int8 twin of an ONNX export: int8 weights per channel, uint8 activations whose ranges
    are calibrated on `calibration_crops` (uint8 (N, 96, 96) detector crops of real faces, never
    of the people it is evaluated on). Tagged with its source like the float twin."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out_path = Path(out_path)
    input_name = onnx.load(str(onnx_path)).graph.input[0].name

    class Crops(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter([{input_name: to_model_input(c)} for c in calibration_crops])

        def get_next(self):
            return next(self._batches, None)

    with tempfile.TemporaryDirectory(dir=out_path.parent) as tmp:
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(onnx_path), str(prepared))
        quantize_static(str(prepared), str(quantized), Crops(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        graph = onnx.load(str(quantized))
        onnx.helper.set_model_props(graph, {SOURCE_KEY: source_sha256})
        with atomic_path(out_path) as final:
            onnx.save(graph, str(final))
    return out_path
