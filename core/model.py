"""The keypoint CNN: the recipe's architecture, `.keras` save/load, and a fast inference path.

Inference runs through ONNX Runtime: measured on this 2-core CPU for one 96x96 face it is
~1.2 ms against ~17 ms for `model(x)` and ~80 ms for `model.predict` (bench/bench_inference.py).
The ONNX graph is exported from the Keras model (keras' own `model.export(format="onnx")`) and
cached beside the `.keras` file; outputs match Keras within 1e-4 (tests/test_model.py).

Model input: (N, 96, 96, 1) float32 grayscale in [0, 1]. Output: (N, 30) normalised
coordinates, x then y per keypoint in schema order, (crop_px - 48) / 48.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import cv2
import numpy as np

from core.card import ModelCard
from core.files import atomic_path
from core.schema import CROP_HALF, CROP_SHAPE, CROP_SIZE, NUM_KEYPOINTS

if TYPE_CHECKING:  # keras is imported lazily: importing core must stay cheap
    import keras

DEFAULT_WIDTHS: tuple[int, ...] = (32, 64, 128, 256, 512)
DROPOUT_RATE = 0.2
DROPOUT_BLOCKS = 3


class ModelError(RuntimeError):
    """A model file is missing, unreadable or of the wrong shape; the message says which."""


def normalise_keypoints(keypoints_crop: np.ndarray) -> np.ndarray:
    """(..., 15, 2) crop pixels -> (..., 30) targets in about [-1, 1]."""
    k = np.asarray(keypoints_crop, dtype=np.float32)
    return ((k - CROP_HALF) / CROP_HALF).reshape(*k.shape[:-2], NUM_KEYPOINTS * 2)


def denormalise_keypoints(outputs: np.ndarray) -> np.ndarray:
    """(..., 30) model outputs -> (..., 15, 2) crop pixels."""
    out = np.asarray(outputs, dtype=np.float64)
    return out.reshape(*out.shape[:-1], NUM_KEYPOINTS, 2) * CROP_HALF + CROP_HALF


def to_model_input(crops: np.ndarray) -> np.ndarray:
    """uint8 crops (N, 96, 96) or (96, 96) -> float32 (N, 96, 96, 1) in [0, 1]."""
    crops = np.asarray(crops)
    if crops.ndim == 2:
        crops = crops[None]
    return (crops.astype(np.float32) / 255.0)[..., None]


#: Heads on the trunk. "gap" is the recipe's (global average pooling: position is left for the
#: channels to encode); "flatten" keeps the last feature map's 3x3 layout; "softargmax" reads each
#: keypoint as the expected position under a softmax heatmap on the trunk's last map, pooled once
#: less (6x6), built from stock layers only so safe_mode loading and the ONNX export need nothing custom.
HEADS: tuple[str, ...] = ("gap", "flatten", "softargmax")


def build_model(widths: Sequence[int] = DEFAULT_WIDTHS, dropout: float = DROPOUT_RATE, head: str = "gap",
                mixed_precision: bool = False) -> "keras.Model":
    """The recipe's loosely-VGG16 CNN: one 3x3 conv + batch norm + ReLU + max-pool per width,
    dropout in the first three blocks, then a head (HEADS) to 30 outputs.

    mixed_precision: the trunk computes in bfloat16 (faster on CPUs with AMX/AVX-512 bf16); the
    outputs stay float32, and `inference_copy` turns the trained model into a plain float32 one."""
    import keras
    from keras import layers

    if head not in HEADS:
        raise ValueError(f"head must be one of {', '.join(HEADS)} (got {head!r})")
    policy = "mixed_bfloat16" if mixed_precision else None
    inputs = keras.Input(CROP_SHAPE, name="face")
    x = conv_blocks(inputs, widths, dropout, dtype=policy, pool_last=head != "softargmax")
    if head == "gap":
        x = layers.GlobalAveragePooling2D(name="gap", dtype=policy)(x)
        outputs = layers.Dense(NUM_KEYPOINTS * 2, name="keypoints", dtype="float32")(x)
    elif head == "flatten":
        x = layers.Flatten(name="flatten", dtype=policy)(x)
        outputs = layers.Dense(NUM_KEYPOINTS * 2, name="keypoints", dtype="float32")(x)
    else:
        outputs = _softargmax_head(x)
    return keras.Model(inputs, outputs, name="facial_keypoints")


def _softargmax_head(features):
    """One heatmap per keypoint (1x1 conv), softmax over its cells, then the expected (x, y) in the
    normalised output units: a frozen Dense whose kernel holds each cell centre's coordinates."""
    import keras
    from keras import layers

    side = int(features.shape[1])
    heatmaps = layers.Conv2D(NUM_KEYPOINTS, 1, name="heatmaps", dtype="float32")(features)
    flat = layers.Reshape((side * side, NUM_KEYPOINTS), name="cells")(heatmaps)
    probabilities = layers.Softmax(axis=1, name="softmax")(flat)
    per_keypoint = layers.Permute((2, 1), name="per_keypoint")(probabilities)  # (15, cells)
    centres = (np.arange(side, dtype=np.float32) + 0.5) / side * 2 - 1  # cell centres in [-1, 1]
    grid_y, grid_x = np.meshgrid(centres, centres, indexing="ij")
    expect = layers.Dense(2, use_bias=False, trainable=False, name="expected_xy",
                          kernel_initializer=keras.initializers.Constant(np.stack([grid_x.ravel(), grid_y.ravel()], 1)))
    return layers.Flatten(name="keypoints")(expect(per_keypoint))  # x, y per keypoint in schema order


def average_models(models: Sequence["keras.Model"]) -> "keras.Model":
    """One model whose output is the mean of `models`' outputs: an ensemble that saves as one `.keras` file
    and runs as one ONNX graph, so every caller of a keypoint model runs it unchanged."""
    import keras
    from keras import layers

    inputs = keras.Input(CROP_SHAPE, name="face")
    members = [keras.Model(m.inputs[0], m.outputs[0], name=f"member{i + 1}")(inputs) for i, m in enumerate(models)]
    return keras.Model(inputs, layers.Average(name="keypoints_mean")(members), name="facial_keypoints_ensemble")


def conv_blocks(x, widths: Sequence[int], dropout: float = 0.0, dropout_blocks: int = DROPOUT_BLOCKS,
                dtype: str | None = None, pool_last: bool = True):
    """One 3x3 conv + batch norm + ReLU + 2x2 max-pool per width (dropout after the first
    `dropout_blocks`; no pool after the last block when `pool_last` is False): the trunk of the
    keypoint model and of core.verifier's model. `dtype`: a Keras dtype policy such as "mixed_bfloat16"."""
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


def inference_copy(model: "keras.Model") -> "keras.Model":
    """The same architecture and weights without optimizer state (a third of the file size), computing in
    float32 (a mixed-precision model's inference twin)."""
    import keras

    def plain(node):
        if isinstance(node, dict):
            if node.get("class_name") == "DTypePolicy":
                return {**node, "config": {**node.get("config", {}), "name": "float32"}}
            return {k: plain(v) for k, v in node.items()}
        return [plain(v) for v in node] if isinstance(node, list) else node

    copy = keras.Model.from_config(plain(model.get_config()))
    copy.set_weights(model.get_weights())
    return copy


def save_model(model: "keras.Model", path: str | os.PathLike) -> Path:
    """Write `.keras` and its ONNX twin atomically (core.files.atomic_path): a crash never leaves half a model."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        model.save(str(tmp))
    export_onnx(model, onnx_path_for(path), source_sha256=file_sha256(path))
    return path


def file_sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


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


def load_keras_model(path: str | os.PathLike, output_size: int = NUM_KEYPOINTS * 2) -> "keras.Model":
    """Load a `.keras` file with safe_mode (no arbitrary code), or raise ModelError saying why.

    `output_size`: what the model must output per crop (30 for a keypoint model, 1 for core.verifier's)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"No model file at {path}. Train one (python -m trainer train ...) or restore the shipped model.")
    problem = keras_file_problem(path)
    if problem:
        raise ModelError(f"The model file {path.name} was refused before loading: {problem}.")
    import keras

    try:
        model = keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # keras raises many types (even FileNotFoundError) for a bad archive
        raise ModelError(f"The model file {path.name} is unreadable: it is not a valid .keras model "
                         f"({type(exc).__name__}). Train or activate another model.") from exc
    if tuple(model.input_shape[1:]) != CROP_SHAPE or model.output_shape[-1] != output_size:
        kind = "keypoint model" if output_size == NUM_KEYPOINTS * 2 else f"model with {output_size} output(s) per crop"
        raise ModelError(f"{path.name} is not a {kind}: input {model.input_shape}, output {model.output_shape}")
    return model


def model_file_problem(path: str | os.PathLike) -> str | None:
    """Why a `.keras` file cannot be a model ('missing' / 'unreadable'), or None; reads no weights, imports no Keras.

    A `.keras` file is a zip holding config.json and model.weights.h5; this checks those and their CRCs,
    cheaply enough for the home page to call on every run.
    """
    path = Path(path)
    if not path.is_file():
        return "missing"
    try:
        with zipfile.ZipFile(path) as archive:
            if not {"config.json", "model.weights.h5"} <= set(archive.namelist()) or archive.testzip() is not None:
                return "unreadable"
    except (zipfile.BadZipFile, OSError, EOFError):
        return "unreadable"
    return None


def test_face_crops() -> np.ndarray:
    """Two (96, 96) uint8 crops a usable model must answer inside the crop: plain grey and a drawn frontal face."""
    face = np.full((CROP_SIZE, CROP_SIZE), 90, np.uint8)
    cv2.ellipse(face, (48, 50), (34, 44), 0, 0, 360, 160, -1)
    for centre in ((35, 37), (62, 37), (49, 53)):  # eyes and nose tip
        cv2.circle(face, centre, 4, 40, -1)
    cv2.ellipse(face, (49, 68), (12, 4), 0, 0, 360, 50, -1)  # mouth
    return np.stack([np.full((CROP_SIZE, CROP_SIZE), 128, np.uint8), face])


def validate_model(keras_path: str | os.PathLike) -> None:
    """Refuse (ModelError) a model that must never become active or shipped: missing, unreadable (safe_mode
    load), of the wrong shape, or whose keypoints on a test face are non-finite or outside the 96x96 crop."""
    path = Path(keras_path)
    model = load_keras_model(path)
    try:
        outputs = np.asarray(model(to_model_input(test_face_crops()), training=False))
    except Exception as exc:  # a model that loads but cannot run
        raise ModelError(f"{path.name} failed a test inference ({type(exc).__name__}): it cannot be used.") from exc
    if not np.isfinite(outputs).all():
        raise ModelError(f"{path.name} predicts non-finite keypoints (NaN or infinity) on a test face: its weights "
                         "are broken (did the training diverge?). It cannot be used.")
    keypoints = denormalise_keypoints(outputs)
    if keypoints.min() < 0 or keypoints.max() > CROP_SIZE:
        raise ModelError(f"{path.name} puts keypoints outside the 96x96 face crop on a test face (from "
                         f"{keypoints.min():.3g} to {keypoints.max():.3g} px): it cannot be used.")


def onnx_path_for(keras_path: str | os.PathLike) -> Path:
    return Path(keras_path).with_suffix(".onnx")


#: ONNX metadata key naming the `.keras` file an ONNX twin was exported from (file mtimes are not
#: reliable after a git checkout, content hashes are).
SOURCE_KEY = "source_keras_sha256"


def export_onnx(model: "keras.Model", path: str | os.PathLike, source_sha256: str = "") -> Path:
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


def int8_path_for(keras_path: str | os.PathLike) -> Path:
    return Path(keras_path).with_suffix(".int8.onnx")


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
        def __init__(self):
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


class OnnxModel:
    """Fast batch inference for one model file on 96x96 crops, through ONNX Runtime.

    Loads the ONNX twin of a `.keras` file, exporting it first when it is missing or was exported
    from other weights; one `predict` call serves one face or a whole frame's faces in one batch.
    `int8=True` loads the quantized twin (`quantize_onnx`) instead, which must exist for these weights.
    Subclasses say what the output means (`OUTPUT_SIZE` values per crop).
    """

    OUTPUT_SIZE = NUM_KEYPOINTS * 2
    #: The card type beside the model file (core.card).
    CARD: type = ModelCard

    def __init__(self, keras_path: str | os.PathLike, threads: int | None = None, int8: bool = False):
        self.keras_path = Path(keras_path)
        if not self.keras_path.is_file():
            raise ModelError(
                f"No model file at {self.keras_path}. Train one (python -m trainer train ...) or restore the shipped model."
            )
        self._threads = threads or min(2, os.cpu_count() or 1)
        sha = file_sha256(self.keras_path)
        if int8:
            session = self._open_twin(int8_path_for(self.keras_path), sha)
            if session is None:
                raise ModelError(f"{self.keras_path.name} has no int8 twin made from these weights "
                                 f"({int8_path_for(self.keras_path).name}).")
        else:
            onnx_path = onnx_path_for(self.keras_path)
            session = self._open_twin(onnx_path, sha)
            if session is None:
                model = load_keras_model(self.keras_path, self.OUTPUT_SIZE)
                target = onnx_path if os.access(onnx_path.parent, os.W_OK) else Path(tempfile.mkdtemp()) / onnx_path.name
                session = self._open(export_onnx(model, target, source_sha256=sha))
                if session is None:
                    raise ModelError(f"Could not load the ONNX export of {self.keras_path.name}")
        outputs = session.get_outputs()[0].shape[-1]
        if outputs != self.OUTPUT_SIZE:
            raise ModelError(f"{self.keras_path.name} has {outputs} output(s) per crop; "
                             f"a {type(self).__name__} needs {self.OUTPUT_SIZE}")
        self._session = session
        self._input_name = self._session.get_inputs()[0].name
        self.card = self.CARD.read_or_empty(self.keras_path)

    def _open_twin(self, onnx_path: Path, source_sha256: str):
        """A session on `onnx_path` when it exists and was made from the weights with this hash, else None."""
        session = self._open(onnx_path) if onnx_path.is_file() else None
        if session is None or session.get_modelmeta().custom_metadata_map.get(SOURCE_KEY) != source_sha256:
            return None
        return session

    def _open(self, onnx_path: Path):
        """An ONNX Runtime session, or None when the file is unreadable (it will be re-exported)."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        # No busy-waiting after a run: with a locator session beside this one (core.pipeline.Recentring)
        # each session's spinning threads starve the other's on 2 cores: re-centring took 40.7 ms a face
        # with spinning, 18.6 ms without (bench/bench_recentring.py); one model alone: 4.1 vs 5.0 ms.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        except Exception:
            return None

    def predict_normalised(self, model_input: np.ndarray) -> np.ndarray:
        """(N, 96, 96, 1) float32 -> (N, OUTPUT_SIZE) raw model outputs."""
        return self._session.run(None, {self._input_name: np.ascontiguousarray(model_input, np.float32)})[0]


class KeypointPredictor(OnnxModel):
    """Crops in, crop-pixel keypoints out."""

    def predict_crops(self, crops: np.ndarray) -> np.ndarray:
        """uint8 crops (N, 96, 96) -> keypoints (N, 15, 2) in crop pixels."""
        crops = np.asarray(crops)
        if crops.ndim == 2:
            crops = crops[None]
        if len(crops) == 0:
            return np.zeros((0, NUM_KEYPOINTS, 2))
        return denormalise_keypoints(self.predict_normalised(to_model_input(crops)))

