"""Image -> faces -> keypoints -> rendered image: the one path the pages, CLI and webcam share.

Images come in through core.images.load_image. `FacePipeline.detect` finds face boxes (Haar cascade,
then the face verifier); `FacePipeline.find_faces` detects, crops with core.geometry, and predicts
every face of a frame in one model call. `render` draws an effect on a copy.
"""
from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from core import overlays
from core.card import Inference
from core.detector import DetectorSettings, FaceDetector
from core.geometry import CropTransform, crop_around_points, crop_from_box, moved_px, shift_onto_points
from core.model import KeypointPredictor, ModelError
from core.schema import CROP_SIZE, flip_keypoints
from core.twins import FasterTwin
from core.verifier import FaceVerifier, load_verifier


@dataclass
class Face:
    """One detected face: its box and the model's 15 keypoints, both in image pixels."""

    box_xywh: np.ndarray
    keypoints_px: np.ndarray
    crop: CropTransform = field(repr=False)


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
    `int8`: run the keypoint model's int8 twin (core.model.quantize_onnx; it must exist beside the model).
    """

    def __init__(self, model_path: str | os.PathLike, detector_settings: DetectorSettings | None = None,
                 flip_average: bool | None = None, recentre: Recentring | bool | None = None,
                 verifier: FaceVerifier | str | os.PathLike | bool | None = None,
                 mean_shape_crop: np.ndarray | list | None = None, int8: bool = False):
        self.predictor = KeypointPredictor(model_path, int8=int8)
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
        self._model_path = Path(model_path)
        self._live_predictor: KeypointPredictor | FasterTwin | None = None
        self._live_lock = threading.Lock()

    @property
    def live_predictor(self) -> KeypointPredictor | FasterTwin:
        """The webcam's keypoint model: when the card says the int8 twin keeps the validation NME
        (trainer.ship measures it) and it was made from these weights, the int8 or float twin per
        batch size, whichever this CPU runs faster (core.twins, measured on first use: the webcam page asks
        before a stream starts, as a frame that took seconds would stall the stream); else the float one."""
        with self._live_lock:  # one measurement, even when a page and a stream ask at once
            if self._live_predictor is None:
                live: KeypointPredictor | FasterTwin = self.predictor
                if self.predictor.card.inference.int8_live:
                    with contextlib.suppress(ModelError):  # missing or stale twin: the float one serves
                        live = FasterTwin(self.predictor, KeypointPredictor(self._model_path, int8=True))
                self._live_predictor = live
        return self._live_predictor

    def detect(self, image: np.ndarray, settings: DetectorSettings | None = None,
               with_rejected: bool = False) -> Detections:
        """Face boxes of a BGR or grayscale image: the detector's (one per face), then the verifier's
        verdict on each; the one detection step of photos, the CLI, evaluation and the webcam."""
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        return self.verify(gray, self.detector.detect(gray, settings or self.detector.settings), with_rejected)

    def verify(self, gray: np.ndarray, boxes: np.ndarray, with_rejected: bool = False) -> Detections:
        """The verifier's verdict on detector boxes of `gray` (all kept without a verifier); `detect`'s second
        half, for boxes found elsewhere (the webcam's detection process)."""
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
                           predictor: KeypointPredictor | FasterTwin | None = None) -> list[np.ndarray]:
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
           face_indices: Iterable[int] | None = None, hide: Iterable[int] = (), privacy: str = "blur") -> np.ndarray:
    """A copy of the image with `effect` (one of overlays.EFFECTS) on the chosen faces (default: all).

    The faces in `hide` are blurred or pixelated (`privacy`) first, inside their own outline, so an
    overlay drawn afterwards stays sharp. Effect "blur" or "pixelate" hides the chosen faces.
    """
    if effect not in overlays.EFFECTS and effect != "none":
        raise ValueError(f"unknown effect {effect!r}; choose from {overlays.EFFECTS}")
    out = image_bgr.copy()
    chosen = sorted(set(range(len(faces)) if face_indices is None else face_indices))
    boxes = [f.box_xywh for f in faces]
    if effect in ("blur", "pixelate"):
        return overlays.hide_faces(out, boxes, chosen, effect)
    hide = sorted(set(hide))
    if hide:
        overlays.hide_faces(out, boxes, hide, privacy)
    draw = {"keypoints": overlays.draw_keypoints, "sunglasses": overlays.add_sunglasses,
            "moustache": overlays.add_moustache, "hat": overlays.add_hat,
            "labelled keypoints": lambda img, k: overlays.draw_keypoints(img, k, labels=True)}.get(effect)
    for i in chosen if draw else ():
        draw(out, faces[i].keypoints_px)
    return out

