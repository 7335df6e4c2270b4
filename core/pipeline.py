"""Image -> faces -> keypoints -> rendered image: the one path the pages, CLI and webcam share.

Images come in through core.images.load_image. `FacePipeline.detect` finds face boxes (Haar cascade,
then the face verifier); `FacePipeline.find_faces` detects, crops with core.geometry, and predicts
every face of a frame in one model call. `render` draws an effect on a copy.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from core import overlays
from core.card import Recentring
from core.detector import (
    DetectorSettings,
    FaceDetector,
    RollSearch,
    centres_inside,
    one_turned_box_per_face,
    search_between,
    search_copies,
    search_turned_copies,
)
from core.geometry import CropTransform, crop_around_points, crop_from_box, moved_px, shift_onto_points
from core.model import KeypointPredictor, ModelError
from core.schema import CROP_SIZE, flip_keypoints
from core.twins import FasterTwin
from core.verifier import FaceVerifier, load_verifier


@dataclass
class Face:
    """One detected face: its box and the model's 15 keypoints, both in image pixels; the box is turned by
    `angle_deg` about its centre (the face's roll, counter-clockwise positive as shown)."""

    box_xywh: np.ndarray
    keypoints_px: np.ndarray
    crop: CropTransform = field(repr=False)
    angle_deg: float = 0.0


@dataclass
class Detections:
    """One detection step's result: accepted boxes and, when asked for, the boxes refused (one per place, none on
    a face accepted at another angle): under the verifier's threshold (a box from a turned copy: under
    FacePipeline.turned_threshold), or, flagged in `rejected_by_flip_check`, read differently mirrored by the
    keypoint model (RollSearch.max_flip_disagreement).

    Scores are the verifier's (None without a verifier); boxes are (N, 4) x, y, w, h in image pixels, each
    turned about its centre by its angle (degrees, counter-clockwise positive as shown; 0 = upright).
    """

    boxes_xywh: np.ndarray
    scores: np.ndarray | None = None
    rejected_xywh: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), dtype=int))
    rejected_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    angles_deg: np.ndarray = field(default_factory=lambda: np.zeros(0))  # empty: every box upright
    rejected_angles_deg: np.ndarray = field(default_factory=lambda: np.zeros(0))
    rejected_by_flip_check: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def __post_init__(self) -> None:
        if len(self.angles_deg) == 0:
            self.angles_deg = np.zeros(len(self.boxes_xywh))
        if len(self.rejected_angles_deg) == 0:
            self.rejected_angles_deg = np.zeros(len(self.rejected_xywh))
        if len(self.rejected_by_flip_check) == 0:
            self.rejected_by_flip_check = np.zeros(len(self.rejected_xywh), dtype=bool)


class FacePipeline:
    """Detector + face verifier + keypoint model. Create once per process (loading the model costs ~1 s).

    `flip_average`: also predict the mirrored crop and average (test-time augmentation, one batch).
    `recentre`: move crops onto off-centre faces first (Recentring; needs `mean_shape_crop`, where the
    detector's crop puts the average training face, 15 x 2 crop px).
    Both are measured in the model card (trainer.ship); the defaults (None) are what it recommends, and
    the mean shape defaults to the card's (trainer.ship passes a model's before its card is written).
    `verifier`: a FaceVerifier, a path to one, False for none; default: the shipped one
    (core.verifier.load_verifier), or none with a log message when its files are missing.
    `int8`: run the keypoint model's int8 twin (trainer.export.quantize_onnx; it must exist beside the model).
    `roll`: also search for tilted faces (core.detector.RollSearch; default: its defaults; False: upright only).
    `refine_roll`: turn the crop of each face found on a turned copy by the eye line of a first prediction
    before the final one (`refine_upright`: also faces found upright).
    """

    def __init__(self, model_path: str | os.PathLike, detector_settings: DetectorSettings | None = None,
                 flip_average: bool | None = None, recentre: Recentring | bool | None = None,
                 verifier: FaceVerifier | str | os.PathLike | bool | None = None,
                 mean_shape_crop: np.ndarray | list | None = None, int8: bool = False,
                 roll: RollSearch | bool | None = None, refine_roll: bool = True, refine_upright: bool = False):
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
        shape = card.mean_shape_crop if mean_shape_crop is None else mean_shape_crop
        self.mean_shape: np.ndarray | None = None if shape is None else np.asarray(shape, dtype=np.float64)
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
        self.roll: RollSearch | None = RollSearch() if roll is None or roll is True else (roll or None)
        self.refine_roll, self.refine_upright = refine_roll, refine_upright
        self._live_lock = threading.Lock()
        self._recent_readings: OrderedDict[bytes, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._readings_lock = threading.Lock()

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
        verdict on each; the one detection step of photos, the CLI, evaluation and the webcam. With a
        RollSearch, candidates at every roll are scored on their de-rotated crops and one box per face is kept."""
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        settings = settings or self.detector.settings
        if self.roll is None:
            return self.verify(gray, self.detector.detect(gray, settings), with_rejected)
        return self.verify_any_roll(gray, *self._search_any_roll(gray, settings), with_rejected=with_rejected)

    def candidates_any_roll(self, gray: np.ndarray, settings: DetectorSettings | None = None) -> np.ndarray:
        """`detect`'s candidates (N, 5: x, y, w, h, angle_deg): core.detector.detect_any_roll's, less the windows
        around the copies' weak boxes on faces the verifier already accepts (RollSearch.skip_found_faces), plus
        the whole in-between copies' where it accepts none (RollSearch.whole_between_when_no_face)."""
        return self._search_any_roll(gray, settings)[0]

    def _search_any_roll(self, gray: np.ndarray, settings: DetectorSettings | None
                         ) -> tuple[np.ndarray, np.ndarray | None]:
        """The candidates and the verifier's scores of them (None without a verifier): a first verdict on the
        upright pass's and the copies' candidates says which weak boxes lie on a face already, a second one on
        everything found so far whether the in-between copies are searched whole; each verdict reuses the scores
        and the flip-check readings (read_both_ways) of the one before, so a verdict again costs little."""
        roll = self.roll or RollSearch()
        found, weak = search_copies(self.detector, gray, settings, roll)
        if self.verifier is None:
            return np.vstack([found, search_between(self.detector, gray, weak, settings, roll)]), None
        verifier = self.verifier

        def scored(candidates: np.ndarray, scores: np.ndarray, more: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            if not len(more):
                return candidates, scores
            return np.vstack([candidates, more]), np.r_[scores, verifier.score_boxes(gray, more[:, :4], more[:, 4])]

        found, scores = scored(np.zeros((0, 5)), np.zeros(0), found)
        looks_between = bool(roll.between_angles_deg) or roll.second_look_scale_factor is not None
        if roll.skip_found_faces and looks_between and len(weak):
            first = self.verify_any_roll(gray, found, scores)
            weak = weak[~centres_inside(weak, np.hstack([first.boxes_xywh, first.angles_deg[:, None]]))]
        found, scores = scored(found, scores, search_between(self.detector, gray, weak, settings, roll))
        if roll.whole_between_when_no_face and roll.between_angles_deg and \
                not len(self.verify_any_roll(gray, found, scores).boxes_xywh):
            whole, _ = search_turned_copies(self.detector, gray, roll.between_angles_deg, settings, roll)
            found, scores = scored(found, scores, whole)
        return found, scores

    @property
    def turned_threshold(self) -> float | None:
        """The verifier score a box from a turned copy needs (RollSearch.turned_threshold, never under the
        verifier's own threshold); None without a verifier or without turned copies."""
        return None if self.verifier is None or self.roll is None else _turned_threshold(self.verifier, self.roll)

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

    def verify_any_roll(self, gray: np.ndarray, candidates_xywha: np.ndarray, scores: np.ndarray | None = None,
                        with_rejected: bool = False) -> Detections:
        """The verifier's verdict on candidates at any roll (x, y, w, h, angle_deg; core.detector.detect_any_roll),
        each scored on its de-rotated crop (unless its `scores` are given), one box per face: `detect`'s second
        half, also for candidates found elsewhere (the webcam's detection process)."""
        candidates = np.asarray(candidates_xywha, dtype=np.float64).reshape(-1, 5)
        boxes, angles = candidates[:, :4], candidates[:, 4]
        if self.verifier is None:  # no scores: upright boxes first, then larger ones
            upright_first = (angles == 0) * 1e12 + boxes[:, 2] * boxes[:, 3]
            keep = _largest_first(boxes, one_turned_box_per_face(candidates, upright_first))
            return Detections(boxes[keep], None, angles_deg=angles[keep])
        if scores is None:
            scores = self.verifier.score_boxes(gray, boxes, angles)
        roll = self.roll or RollSearch()
        needed = np.where(angles == 0, self.verifier.threshold, _turned_threshold(self.verifier, roll))
        accepted = np.flatnonzero(scores >= needed)
        # boxes compete for a face on score, upright ones with roll.upright_bonus (candidates list upright boxes
        # first, so with no bonus they win ties)
        priority = scores + roll.upright_bonus * (angles == 0)
        read_alike: dict[int, bool] = {}  # turned boxes checked by the keypoint model, by candidate index
        while True:
            keep = accepted[one_turned_box_per_face(candidates[accepted], priority[accepted])]
            unchecked = [int(i) for i in keep if angles[i] != 0 and int(i) not in read_alike]
            if roll.max_flip_disagreement is None or not unchecked:
                break
            # only the boxes that would be kept are read (a dropped box only ever hid boxes below it)
            disagreement = self.flip_disagreement(gray, boxes[unchecked], angles[unchecked])
            read_alike.update(zip(unchecked, disagreement <= roll.max_flip_disagreement, strict=True))
            accepted = accepted[[read_alike.get(int(i), True) for i in accepted]]
        keep = _largest_first(boxes, keep)
        found = Detections(boxes[keep], scores[keep], angles_deg=angles[keep])
        if with_rejected:
            read_apart = np.zeros(len(candidates), dtype=bool)
            read_apart[[i for i, alike in read_alike.items() if not alike]] = True
            refused = np.flatnonzero((scores < needed) | read_apart)
            # a refused box on a face that was accepted at another angle is that face, not a rejection; left out
            # before the refused boxes are thinned to one per place, or it would hide the low-scored ones it touches
            face_too = [len(one_turned_box_per_face(np.vstack([candidates[keep], candidates[i]]),
                                                    np.r_[scores[keep] + 1, scores[i]])) <= len(keep) for i in refused]
            refused = refused[~np.asarray(face_too, dtype=bool)] if len(refused) else refused
            refused = refused[one_turned_box_per_face(candidates[refused], scores[refused])]
            found.rejected_xywh, found.rejected_scores = boxes[refused], scores[refused]
            found.rejected_angles_deg, found.rejected_by_flip_check = angles[refused], read_apart[refused]
        return found

    def flip_disagreement(self, gray: np.ndarray, boxes_xywh: np.ndarray, angles_deg: np.ndarray) -> np.ndarray:
        """(N,) how differently the keypoint model reads each box's de-rotated crop and that crop's mirror: the
        mean absolute difference between the two readings' coordinates (the mirror's mirrored back), as a
        fraction of the crop side. A face reads alike both ways; most of the picture frames, collars and hair
        that the turned copies fire on and the verifier lets through do not (RollSearch.max_flip_disagreement)."""
        crops = [crop_from_box(b, angle_deg=float(a)) for b, a in zip(boxes_xywh, angles_deg, strict=True)]
        if not crops:
            return np.zeros(0)
        direct, mirrored_back = self.read_both_ways(np.stack([c.extract(gray) for c in crops]))
        return np.abs(direct - mirrored_back).reshape(len(crops), -1).mean(axis=1) / CROP_SIZE

    def read_both_ways(self, images: np.ndarray, predictor: KeypointPredictor | FasterTwin | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints (N, 15, 2, crop px) read on each 96 x 96 crop and on its mirror (mirrored back), in one model
        call. The pipeline's own model's readings of the last REMEMBERED_READINGS crops read (or asked for again)
        are kept by their pixels: the flip check reads a turned face's crop, and the keypoint step's first pass
        (with flip_average) reads the same crop again. Another predictor's (the webcam's twin, whose crops are new
        every frame) are read as they come."""
        predictor = predictor or self.predictor
        if predictor is not self.predictor:
            return _read_both_ways(predictor, images)
        keys = [hashlib.blake2b(image.tobytes(), digest_size=16).digest() for image in images]
        with self._readings_lock:
            known = {k: self._recent_readings[k] for k in keys if k in self._recent_readings}
            for k in known:
                self._recent_readings.move_to_end(k)
        new = [i for i, k in enumerate(keys) if k not in known]
        if new:
            direct, mirrored_back = _read_both_ways(predictor, images[new])
            known.update((keys[i], (direct[j], mirrored_back[j])) for j, i in enumerate(new))
            with self._readings_lock:
                for i in new:
                    self._recent_readings[keys[i]] = known[keys[i]]
                while len(self._recent_readings) > REMEMBERED_READINGS:
                    self._recent_readings.popitem(last=False)
        return np.stack([known[k][0] for k in keys]), np.stack([known[k][1] for k in keys])

    def forget_recent_readings(self) -> None:
        """Drop the crops' readings read_both_ways remembers (a benchmark times every image's readings afresh)."""
        with self._readings_lock:
            self._recent_readings.clear()

    def find_faces(self, image_bgr: np.ndarray, settings: DetectorSettings | None = None,
                   boxes_xywh: np.ndarray | None = None, angles_deg: np.ndarray | None = None) -> list[Face]:
        """Faces of a BGR image; pass `boxes_xywh` (and their `angles_deg`) to skip detection (e.g. boxes
        tracked between frames)."""
        gray = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY) if image_bgr.ndim == 3 else image_bgr
        if boxes_xywh is None:
            found = self.detect(gray, settings)
            boxes_xywh, angles_deg = found.boxes_xywh, found.angles_deg
        return self.keypoints_for_boxes(gray, boxes_xywh, angles_deg)

    def keypoints_for_boxes(self, gray: np.ndarray, boxes_xywh: Iterable,
                            angles_deg: Iterable | None = None) -> list[Face]:
        """Crop every box the way training did (turned upright, re-centred where needed) and predict all of
        them in one batch."""
        boxes = np.asarray(list(boxes_xywh), dtype=np.float64).reshape(-1, 4)
        angles = np.zeros(len(boxes)) if angles_deg is None else np.asarray(list(angles_deg), dtype=np.float64)
        crops = self.crops_for_boxes(gray, boxes, angles)
        if not crops:
            return []
        keypoints_px = self.keypoints_in_crops(gray, crops)
        # an upright box on a face rolled far (the cascade fires on some faces at 40-50 deg): read it again turned,
        # twice at most (a first reading of a far-rolled face sees less roll than there is)
        again = [i for i, c in enumerate(crops) if c.angle_deg == 0]
        for limit in (REREAD_ROLL_DEG, 5.0) if self.refine_roll and self.mean_shape is not None else ():
            again = [i for i in again
                     if abs(residual_roll(crops[i], keypoints_px[i], np.asarray(self.mean_shape))) > limit]
            for i in again:
                crops[i] = upright_on_eyes(crops[i], keypoints_px[i], np.asarray(self.mean_shape))
            for i, k in zip(again, self.keypoints_in_crops(gray, [crops[i] for i in again]) if again else [],
                            strict=True):
                keypoints_px[i] = k
        return [Face(b, k, c, float(a)) for b, c, k, a in zip(boxes, crops, keypoints_px, angles, strict=True)]

    def crops_for_boxes(self, gray: np.ndarray, boxes_xywh: np.ndarray,
                        angles_deg: np.ndarray | None = None) -> list[CropTransform]:
        """The model's crop of each detector box: core.geometry's framing turned by the box's angle, then
        (refine_roll) turned by the eye line of a first prediction on turned boxes, then Recentring if enabled."""
        angles = np.zeros(len(boxes_xywh)) if angles_deg is None else np.asarray(angles_deg, dtype=np.float64)
        crops = [crop_from_box(b, angle_deg=float(a)) for b, a in zip(boxes_xywh, angles, strict=True)]
        turned = [i for i, a in enumerate(angles) if a != 0 or self.refine_upright]
        if self.refine_roll and self.mean_shape is not None and turned:
            first = self.keypoints_in_crops(gray, [crops[i] for i in turned])
            for i, k in zip(turned, first, strict=True):
                crops[i] = upright_on_eyes(crops[i], k, np.asarray(self.mean_shape))
        if not self.recentre or not crops:
            return crops
        reference = np.asarray(self.mean_shape)
        shifted = list(crops)
        located = self.keypoints_in_crops(gray, shifted, self.locator)
        for _ in range(self.recentre.passes - 1):
            shifted = [shift_onto_points(c, k, reference) for c, k in zip(shifted, located)]
            located = self.keypoints_in_crops(gray, shifted, self.locator)
        return [crop_around_points(k, reference, rotate=False) if moved_px(c, s) > self.recentre.min_offset_px else c
                for c, s, k in zip(crops, shifted, located)]

    def keypoints_in_crops(self, gray: np.ndarray, crops: list[CropTransform],
                           predictor: KeypointPredictor | FasterTwin | None = None) -> list[np.ndarray]:
        """Image-pixel keypoints for each crop, all crops (and their mirrors) in one model call."""
        predictor = predictor or self.predictor
        images = np.stack([c.extract(gray) for c in crops])
        if self.flip_average:
            direct, mirrored_back = self.read_both_ways(images, predictor)
            keypoints_crop = (direct + mirrored_back) / 2
        else:
            keypoints_crop = predictor.predict_crops(images)
        return [c.to_image(k) for c, k in zip(crops, keypoints_crop)]


def _turned_threshold(verifier: FaceVerifier, roll: RollSearch) -> float:
    return max(verifier.threshold, roll.turned_threshold or 0.0)


def _read_both_ways(predictor: KeypointPredictor | FasterTwin, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    both = predictor.predict_crops(np.concatenate([images, images[:, :, ::-1]]))
    return both[: len(images)].copy(), flip_keypoints(both[len(images):], CROP_SIZE)


#: How many crops' readings a FacePipeline remembers (read_both_ways): a few frames' faces, a few kB.
REMEMBERED_READINGS = 32

#: A face read on an upright crop whose eye line is off the mean face's by more than this is read again on a
#: crop turned by it (natural roll in upright crops stays well inside it).
REREAD_ROLL_DEG = 20.0


def residual_roll(crop: CropTransform, keypoints_px: np.ndarray, mean_shape_crop: np.ndarray) -> float:
    """How far (deg, clockwise as shown) the eye line of `keypoints_px` lies off the mean training face's in `crop`."""
    eyes = crop.to_crop(keypoints_px)[:2]  # schema order: left eye centre, right eye centre
    mean_eyes = np.asarray(mean_shape_crop, dtype=np.float64).reshape(-1, 2)[:2]
    seen = np.degrees(np.arctan2(*(eyes[0] - eyes[1])[::-1]))
    wanted = np.degrees(np.arctan2(*(mean_eyes[0] - mean_eyes[1])[::-1]))
    return float((seen - wanted + 180) % 360 - 180)


def upright_on_eyes(crop: CropTransform, keypoints_px: np.ndarray, mean_shape_crop: np.ndarray) -> CropTransform:
    """`crop` turned about its centre so the eye line of `keypoints_px` lies as the mean training face's does
    (the detection's angle is a copy's, up to half the step between copies off the face's roll)."""
    residual = residual_roll(crop, keypoints_px, mean_shape_crop)
    return CropTransform(crop.left, crop.top, crop.side, crop.size, crop.angle_deg - residual)


def _largest_first(boxes: np.ndarray, indices: np.ndarray) -> np.ndarray:
    indices = np.asarray(indices, dtype=int)
    return indices[np.argsort(-(boxes[indices, 2] * boxes[indices, 3]), kind="stable")]


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
    boxes, angles = [f.box_xywh for f in faces], [f.angle_deg for f in faces]
    if effect in ("blur", "pixelate"):
        return overlays.hide_faces(out, boxes, chosen, effect, angles)
    hide = sorted(set(hide))
    if hide:
        overlays.hide_faces(out, boxes, hide, privacy, angles)
    drawers: dict[str, Callable[[np.ndarray, np.ndarray], object]] = {
        "keypoints": overlays.draw_keypoints, "sunglasses": overlays.add_sunglasses,
        "moustache": overlays.add_moustache, "hat": overlays.add_hat,
        "labelled keypoints": lambda img, k: overlays.draw_keypoints(img, k, labels=True)}
    draw = drawers.get(effect)
    if draw is not None:
        for i in chosen:
            draw(out, faces[i].keypoints_px)
    return out

