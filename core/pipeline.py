"""Image -> faces -> keypoints -> rendered image: the one path the pages, CLI and webcam share.

`load_image` turns whatever a person hands us (bytes of any common format, arrays in any
dtype/channel layout) into a BGR uint8 array or raises `ImageError` with a sentence a person
understands. `FacePipeline.detect` finds face boxes (Haar cascade, then the face verifier);
`FacePipeline.find_faces` detects, crops with core.geometry, and predicts every face of a frame in
one model call. `render` draws an effect on a copy.
"""
from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from core import overlays
from core.detector import DetectorSettings, FaceDetector
from core.card import Inference
from core.geometry import CropTransform, crop_around_points, crop_from_box, moved_px, shift_onto_points
from core.model import KeypointPredictor
from core.verifier import FaceVerifier, load_verifier
from core.schema import COORD_COLUMNS, CROP_SIZE, flip_keypoints

#: Larger images are refused before decoding (a decompression bomb is a few KB of PNG).
MAX_PIXELS = 60_000_000
#: Faces are found on a copy no larger than this; keypoints come back in full-resolution pixels.
DETECT_MAX_SIDE = 1280


class ImageError(ValueError):
    """The input cannot be used as an image; str(error) is a message for a person."""


def load_image(source: bytes | str | os.PathLike | np.ndarray, channel_order: str = "BGR") -> np.ndarray:
    """Any image -> BGR uint8 (H, W, 3). Bytes and paths are decoded with EXIF orientation applied."""
    if isinstance(source, np.ndarray):
        return to_bgr_uint8(source, channel_order)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"{path} does not exist or is not a file.")
        data = path.read_bytes()
    else:
        data = bytes(source)
    if not data:
        raise ImageError("The file is empty.")
    _check_header(data)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)  # applies EXIF orientation
    if image is None or image.size == 0:
        raise ImageError("The file is corrupt or truncated: it could not be decoded as an image.")
    return image


def _check_header(data: bytes) -> None:
    """Read only the header (Pillow) to refuse non-images and decompression bombs before decoding."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
    except Image.DecompressionBombError as exc:
        raise ImageError(f"The image is too large to process safely ({exc}).") from exc
    except Exception as exc:
        raise ImageError("This is not an image file Pillow or OpenCV can read (try JPEG, PNG, WebP or BMP).") from exc
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"The image is {width}x{height} = {width * height / 1e6:.0f} megapixels; "
            f"the limit is {MAX_PIXELS / 1e6:.0f} megapixels. Please downscale it."
        )
    if width == 0 or height == 0:
        raise ImageError("The image has no pixels.")


def to_bgr_uint8(array: np.ndarray, channel_order: str = "BGR") -> np.ndarray:
    """Gray, gray+1, RGB/BGR, RGBA/BGRA of uint8, uint16 or float [0, 1] -> BGR uint8."""
    a = np.asarray(array)
    if a.size == 0 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)):
        raise ImageError(f"An image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got {a.shape}.")
    if a.shape[0] * a.shape[1] > MAX_PIXELS:
        raise ImageError(f"The image is {a.shape[1]}x{a.shape[0]}, over the {MAX_PIXELS / 1e6:.0f}-megapixel limit.")
    if a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        a = np.clip(np.nan_to_num(a) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif a.dtype != np.uint8:
        raise ImageError(f"Unsupported pixel type {a.dtype}.")
    if a.ndim == 2 or a.shape[2] == 1:
        return cv2.cvtColor(a.reshape(a.shape[:2]), cv2.COLOR_GRAY2BGR)
    rgb_first = channel_order.upper().startswith("RGB")
    if a.shape[2] == 4:
        return cv2.cvtColor(a, cv2.COLOR_RGBA2BGR if rgb_first else cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(a[..., ::-1]) if rgb_first else a


@dataclass
class Face:
    """One detected face: its box and the model's 15 keypoints, both in image pixels."""

    box_xywh: np.ndarray
    keypoints_px: np.ndarray
    crop: CropTransform = field(repr=False)

    def region_xywh(self) -> np.ndarray:
        """The square the model looked at, used as the area to blur or pixelate."""
        return np.array([self.crop.left, self.crop.top, self.crop.side, self.crop.side])


@dataclass(frozen=True)
class Recentring:
    """Move a detector crop onto the face before the keypoint model reads it.

    The Haar box of a turned head centres on the head, not the face, so the face can sit 20-30 crop
    px off-centre, where the model (trained on detector crops) falls back to a frontal layout.
    A locator model (fine-tuned on crops jittered around the detection, trainer.importer) runs
    `passes` times, the crop shifted onto its prediction between passes. Only a face whose crop
    moved more than `min_offset_px` (crop px) in total is re-framed, around the last prediction,
    the way training crops are framed (core.geometry.crop_around_points): re-framing a
    well-centred face costs accuracy, and the total move over several passes tells a badly
    framed face from the locator's noise better than one pass does. `locator` is a model file
    beside the keypoint model ("" = the keypoint model itself).
    """

    locator: str = ""
    passes: int = 3
    #: Default: how far the detector put the 99th-percentile YouTube-faces training face off the
    #: mean position (a card's train_offset_p99_px); trainer.ship chooses a card's own threshold.
    min_offset_px: float = 8.9

    @classmethod
    def from_card(cls, inference: Inference) -> "Recentring | None":
        """The card's `inference.recentre`; None when the card chose no re-centring."""
        return cls(**inference.recentre) if inference.recentre else None


@dataclass
class Detections:
    """One detection step's result: accepted boxes and, when asked for, the boxes the verifier rejected.

    Scores are the verifier's (None without a verifier); boxes are (N, 4) x, y, w, h in image pixels.
    """

    boxes_xywh: np.ndarray
    scores: np.ndarray | None = None
    rejected_xywh: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), dtype=int))
    rejected_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))


class FacePipeline:
    """Detector + face verifier + keypoint model. Create once per process (loading the model costs ~1 s).

    `flip_average`: also predict the mirrored crop and average (test-time augmentation, one batch).
    `recentre`: move crops onto off-centre faces first (Recentring; needs `mean_shape_crop`, where the
    detector's crop puts the average training face, 15 x 2 crop px).
    Both are measured in the model card (trainer.ship); the defaults (None) are what it recommends, and
    the mean shape defaults to the card's (trainer.ship passes a model's before its card is written).
    `verifier`: a FaceVerifier, a path to one, False for none; default: the shipped one
    (core.verifier.load_verifier), or none with a log message when its files are missing.
    """

    def __init__(self, model_path: str | os.PathLike, detector_settings: DetectorSettings | None = None,
                 flip_average: bool | None = None, recentre: Recentring | bool | None = None,
                 verifier: FaceVerifier | str | os.PathLike | bool | None = None,
                 mean_shape_crop: np.ndarray | list | None = None):
        self.predictor = KeypointPredictor(model_path)
        self.detector = FaceDetector(detector_settings)
        if verifier is None or verifier is True:
            verifier = load_verifier()
        elif isinstance(verifier, (str, os.PathLike)):
            verifier = load_verifier(verifier)
        self.verifier: FaceVerifier | None = verifier or None
        card = self.predictor.card
        recommended = card.inference
        self.flip_average = bool(recommended.flip_average) if flip_average is None else flip_average
        self.mean_shape = card.mean_shape_crop if mean_shape_crop is None else mean_shape_crop
        if recentre is None:
            recentre = Recentring.from_card(recommended)
        elif recentre is True:
            recentre = Recentring.from_card(recommended) or Recentring()
        self.recentre = recentre if recentre and self.mean_shape is not None else None
        self.locator = self.predictor
        if self.recentre and self.recentre.locator:
            self.locator = KeypointPredictor(Path(model_path).parent / self.recentre.locator)

    def detect(self, image: np.ndarray, settings: DetectorSettings | None = None,
               with_rejected: bool = False) -> Detections:
        """Face boxes of a BGR or grayscale image: the detector's (one per face), then the verifier's
        verdict on each; the one detection step of photos, the CLI, evaluation and the webcam."""
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        s = settings or self.detector.settings
        boxes = self.detector.detect(gray, replace(s, max_side=min(s.max_side, DETECT_MAX_SIDE)))
        if self.verifier is None or len(boxes) == 0:
            return Detections(boxes, None if self.verifier is None else np.zeros(0))
        scores = self.verifier.score_boxes(gray, boxes)
        keep = scores >= self.verifier.threshold
        if not with_rejected:
            return Detections(boxes[keep], scores[keep])
        return Detections(boxes[keep], scores[keep], boxes[~keep], scores[~keep])

    def find_faces(self, image_bgr: np.ndarray, settings: DetectorSettings | None = None,
                   boxes_xywh: np.ndarray | None = None) -> list[Face]:
        """Faces of a BGR image; pass `boxes_xywh` to skip detection (e.g. boxes tracked between frames)."""
        gray = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY) if image_bgr.ndim == 3 else image_bgr
        if boxes_xywh is None:
            boxes_xywh = self.detect(gray, settings).boxes_xywh
        return self.keypoints_for_boxes(gray, boxes_xywh)

    def keypoints_for_boxes(self, gray: np.ndarray, boxes_xywh: Iterable) -> list[Face]:
        """Crop every box the way training did (re-centred where needed) and predict all of them in one batch."""
        boxes = np.asarray(list(boxes_xywh), dtype=np.float64).reshape(-1, 4)
        crops = self.crops_for_boxes(gray, boxes)
        if not crops:
            return []
        keypoints_px = self.keypoints_in_crops(gray, crops)
        return [Face(b, k, c) for b, c, k in zip(boxes, crops, keypoints_px)]

    def crops_for_boxes(self, gray: np.ndarray, boxes_xywh: np.ndarray) -> list[CropTransform]:
        """The model's crop of each detector box: core.geometry's framing, then Recentring if enabled."""
        crops = [crop_from_box(b) for b in boxes_xywh]
        if not self.recentre or not crops:
            return crops
        reference = np.asarray(self.mean_shape)
        shifted = list(crops)
        located = self.keypoints_in_crops(gray, shifted, self.locator)
        for _ in range(self.recentre.passes - 1):
            shifted = [shift_onto_points(c, k, reference) for c, k in zip(shifted, located)]
            located = self.keypoints_in_crops(gray, shifted, self.locator)
        return [crop_around_points(k, reference) if moved_px(c, s) > self.recentre.min_offset_px else c
                for c, s, k in zip(crops, shifted, located)]

    def keypoints_in_crops(self, gray: np.ndarray, crops: list[CropTransform],
                           predictor: KeypointPredictor | None = None) -> list[np.ndarray]:
        """Image-pixel keypoints for each crop, all crops (and their mirrors) in one model call."""
        predictor = predictor or self.predictor
        images = np.stack([c.extract(gray) for c in crops])
        if self.flip_average:
            both = predictor.predict_crops(np.concatenate([images, images[:, :, ::-1]]))
            keypoints_crop = (both[: len(crops)] + flip_keypoints(both[len(crops):], CROP_SIZE)) / 2
        else:
            keypoints_crop = predictor.predict_crops(images)
        return [c.to_image(k) for c, k in zip(crops, keypoints_crop)]


def render(image_bgr: np.ndarray, faces: list[Face], effect: str = "keypoints",
           face_indices: Iterable[int] | None = None) -> np.ndarray:
    """A copy of the image with `effect` (one of overlays.EFFECTS) on the chosen faces (default: all)."""
    if effect not in overlays.EFFECTS and effect != "none":
        raise ValueError(f"unknown effect {effect!r}; choose from {overlays.EFFECTS}")
    out = image_bgr.copy()
    chosen = set(range(len(faces)) if face_indices is None else face_indices)
    for i, face in enumerate(faces):
        if i not in chosen:
            continue
        k = face.keypoints_px
        if effect == "keypoints":
            overlays.draw_keypoints(out, k)
        elif effect == "labelled keypoints":
            overlays.draw_keypoints(out, k, labels=True)
        elif effect == "sunglasses":
            overlays.add_sunglasses(out, k)
        elif effect == "moustache":
            overlays.add_moustache(out, k)
        elif effect == "hat":
            overlays.add_hat(out, k)
        elif effect == "blur":
            overlays.blur_region(out, face.region_xywh())
        elif effect == "pixelate":
            overlays.pixelate_region(out, face.region_xywh())
    return out


def faces_table(faces: list[Face]) -> list[dict]:
    """One flat dict per face (box + 15 named x/y in image pixels), for CSV/JSON export and tables."""
    rows = []
    for i, f in enumerate(faces):
        row = {"face": i, "box_x": int(f.box_xywh[0]), "box_y": int(f.box_xywh[1]),
               "box_w": int(f.box_xywh[2]), "box_h": int(f.box_xywh[3])}
        row.update({c: round(float(v), 2) for c, v in zip(COORD_COLUMNS, f.keypoints_px.reshape(-1))})
        rows.append(row)
    return rows

