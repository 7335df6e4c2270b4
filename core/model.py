"""The keypoint model as the app runs it: the ONNX twin of a `.keras` file, through ONNX Runtime.

Core holds no Keras code: the architecture, `.keras` I/O and the export of twins are the trainer's
(trainer.architecture, trainer.export). A twin is tagged with the hash of the `.keras` file it was
exported from; a missing or stale twin is refused with the command that makes it
(`python -m trainer twin <model.keras>`), never exported inside the app.

Model input: (N, 96, 96, 1) float32 grayscale in [0, 1]. Output: (N, 30) normalised
coordinates, x then y per keypoint in schema order, (crop_px - 48) / 48.
"""
from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path
from typing import Any, Generic, TypeVar

import cv2
import numpy as np

from core.card import ModelCard, VerifierCard
from core.schema import CROP_HALF, CROP_SIZE, NUM_KEYPOINTS


class ModelError(RuntimeError):
    """A model file is missing, unreadable or of the wrong shape; the message says which."""


def no_model_file(path: str | os.PathLike) -> ModelError:
    """The error for a model path that holds no file, with what to do about it."""
    return ModelError(f"No model file at {path}. Train one (python -m trainer train ...) or restore the shipped model.")


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


def file_sha256(path: str | os.PathLike) -> str:
    """The content hash that ties a twin to its `.keras` file (mtimes do not survive a git checkout)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


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


def probe_face_crops() -> np.ndarray:
    """Two (96, 96) uint8 crops a usable model must answer inside the crop: plain grey and a drawn frontal face."""
    face = np.full((CROP_SIZE, CROP_SIZE), 90, np.uint8)
    cv2.ellipse(face, (48, 50), (34, 44), 0, 0, 360, 160, -1)
    for centre in ((35, 37), (62, 37), (49, 53)):  # eyes and nose tip
        cv2.circle(face, centre, 4, 40, -1)
    cv2.ellipse(face, (49, 68), (12, 4), 0, 0, 360, 50, -1)  # mouth
    return np.stack([np.full((CROP_SIZE, CROP_SIZE), 128, np.uint8), face])


def onnx_path_for(keras_path: str | os.PathLike) -> Path:
    return Path(keras_path).with_suffix(".onnx")


def int8_path_for(keras_path: str | os.PathLike) -> Path:
    return Path(keras_path).with_suffix(".int8.onnx")


#: ONNX metadata key naming the `.keras` file an ONNX twin was exported from (file mtimes are not
#: reliable after a git checkout, content hashes are).
SOURCE_KEY = "source_keras_sha256"


def twin_command(keras_path: str | os.PathLike) -> str:
    """The command that makes (or refreshes) the float ONNX twin of `keras_path`."""
    return f"python -m trainer twin {keras_path}"


def _session(onnx_path: Path, threads: int) -> Any:
    """An ONNX Runtime session, or None when the file is unreadable."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # No busy-waiting after a run: with a locator session beside this one (core.pipeline.Recentring)
    # each session's spinning threads take the cores the other one needs (bench/bench_recentring.py).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    except Exception:
        return None


def _open_twin(twin: Path, source_sha256: str, threads: int) -> tuple[Any, str | None]:
    """(session, None) when `twin` was exported from the weights with this hash, else (None, 'missing' /
    'unreadable' / 'stale')."""
    if not twin.is_file():
        return None, "missing"
    session = _session(twin, threads)
    if session is None:
        return None, "unreadable"
    if session.get_modelmeta().custom_metadata_map.get(SOURCE_KEY) != source_sha256:
        return None, "stale"
    return session, None


def twin_problem(keras_path: str | os.PathLike, int8: bool = False) -> str | None:
    """Why the ONNX twin of `keras_path` cannot serve it ('missing', 'unreadable', 'stale': exported from other
    weights), or None when it is current."""
    keras_path = Path(keras_path)
    twin = int8_path_for(keras_path) if int8 else onnx_path_for(keras_path)
    return _open_twin(twin, file_sha256(keras_path), 1)[1]


CardT = TypeVar("CardT", ModelCard, VerifierCard)


class OnnxModel(Generic[CardT]):
    """Fast batch inference for one model file on 96x96 crops, through ONNX Runtime.

    Loads the ONNX twin of a `.keras` file, which must have been exported from these weights (a
    ModelError says which command makes it otherwise); one `predict` call serves one face or a whole
    frame's faces in one batch. `int8=True` loads the quantized twin (trainer.export.quantize_onnx)
    instead. Subclasses say what the output means (`OUTPUT_SIZE` values per crop).
    """

    OUTPUT_SIZE = NUM_KEYPOINTS * 2
    #: The card type beside the model file (core.card).
    CARD: type[CardT]

    def __init__(self, keras_path: str | os.PathLike, threads: int | None = None, int8: bool = False):
        self.keras_path = Path(keras_path)
        if not self.keras_path.is_file():
            raise no_model_file(self.keras_path)
        threads = threads or min(2, os.cpu_count() or 1)
        twin = int8_path_for(self.keras_path) if int8 else onnx_path_for(self.keras_path)
        session, problem = _open_twin(twin, file_sha256(self.keras_path), threads)
        if session is None:
            if model_file_problem(self.keras_path):  # the .keras file itself is broken: say that first
                raise ModelError(f"The model file {self.keras_path.name} is unreadable: it is not a valid .keras "
                                 "model. Train or activate another model.")
            if int8:
                raise ModelError(f"{self.keras_path.name} has no int8 twin made from these weights ({twin.name} is "
                                 f"{problem}); `python -m trainer ship` makes one and measures it.")
            raise ModelError(f"{self.keras_path.name} has no ONNX twin made from these weights ({twin.name} is "
                             f"{problem}). Make it with: {twin_command(self.keras_path)}")
        outputs = session.get_outputs()[0].shape[-1]
        if outputs != self.OUTPUT_SIZE:
            raise ModelError(f"{self.keras_path.name} has {outputs} output(s) per crop; "
                             f"a {type(self).__name__} needs {self.OUTPUT_SIZE}")
        self._session = session
        self._input_name = self._session.get_inputs()[0].name
        self.card: CardT = self.CARD.read_or_empty(self.keras_path)

    def predict_normalised(self, model_input: np.ndarray) -> np.ndarray:
        """(N, 96, 96, 1) float32 -> (N, OUTPUT_SIZE) raw model outputs."""
        return self._session.run(None, {self._input_name: np.ascontiguousarray(model_input, np.float32)})[0]


class KeypointPredictor(OnnxModel[ModelCard]):
    """Crops in, crop-pixel keypoints out."""

    CARD = ModelCard

    def predict_crops(self, crops: np.ndarray) -> np.ndarray:
        """uint8 crops (N, 96, 96) -> keypoints (N, 15, 2) in crop pixels."""
        crops = np.asarray(crops)
        if crops.ndim == 2:
            crops = crops[None]
        if len(crops) == 0:
            return np.zeros((0, NUM_KEYPOINTS, 2))
        return denormalise_keypoints(self.predict_normalised(to_model_input(crops)))


def validate_model(keras_path: str | os.PathLike) -> None:
    """Refuse (ModelError) a model that must never become active: missing, not a `.keras` archive, without a
    current ONNX twin, of the wrong shape, or whose keypoints on a test face are non-finite or outside the
    96x96 crop. Runs the twin, as the app will (trainer.export.validate_keras_model checks the Keras side)."""
    path = Path(keras_path)
    check_probe_outputs(path.name, KeypointPredictor(path, threads=1).predict_normalised(
        to_model_input(probe_face_crops())))


def check_probe_outputs(name: str, outputs: np.ndarray) -> None:
    """Refuse (ModelError) a model's outputs on probe_face_crops that are non-finite or outside the crop."""
    if not np.isfinite(outputs).all():
        raise ModelError(f"{name} predicts non-finite keypoints (NaN or infinity) on a test face: its weights "
                         "are broken (did the training diverge?). It cannot be used.")
    keypoints = denormalise_keypoints(outputs)
    if keypoints.min() < 0 or keypoints.max() > CROP_SIZE:
        raise ModelError(f"{name} puts keypoints outside the 96x96 face crop on a test face (from "
                         f"{keypoints.min():.3g} to {keypoints.max():.3g} px): it cannot be used.")
