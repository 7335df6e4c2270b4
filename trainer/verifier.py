"""Train the face verifier (core.verifier): mine crops from the 68-point frames, train, choose a threshold.

Data, split by person exactly as the shipped keypoint model's card (its validation and test people
never train the verifier):
- positives: the keypoint model's crop (core.geometry) of every detector box that holds the labelled face;
- hard negatives: detector boxes that hold no labelled face, mined at every sensitivity
  (min_neighbors 1..9), minus boxes on real faces in the background (`BACKGROUND_FACES`, found by
  looking at contact sheets of the mined boxes);
- random background crops of the frames, away from the labelled face;
- with a RollSearch (`mine(..., roll=...)`, `train-verifier --turned`): the same from the turned copies the
  any-roll search makes (core.detector.turned_copy), each box read on its de-rotated crop as the search's
  verifier reads it, and labelled against the labelled face as the copy shows it;
- face-free images the code makes (noise, gradients, stripes, blobs): `synthetic_negatives`.
Augmentation: trainer.augment (flip, rotation/scale/shift, brightness/contrast), as for keypoints.

The threshold is the highest that keeps >= `MIN_RECALL` of the validation people's true faces;
the card records precision and recall on validation people and, once, on test people.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Set
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core.card import VerifierCard, read_card
from core.detector import (
    DetectorSettings,
    FaceDetector,
    RollSearch,
    boxes_from_copy,
    outside_share,
    turned_box_iou,
    turned_copy,
)
from core.files import atomic_path
from core.geometry import box_iou, crop_from_box
from core.model import to_model_input
from core.schema import CROP_SHAPE, CROP_SIZE
from trainer import events as ev
from trainer.architecture import conv_blocks, inference_copy
from trainer.augment import AugmentConfig, augment_batch
from trainer.export import save_model
from trainer.frames import FrameSource, label_ious, person_of

#: Sensitivities mined: the photo page's slider runs min_neighbors 1..9. The app detects at scale factor
#: 1.1 (core.detector.DetectorSettings); mining also at 1.2 adds the other false boxes a coarser scale finds.
MINED_MIN_NEIGHBORS = tuple(range(1, 10))
MINED_SCALE_FACTORS = (1.1, 1.2)
#: A detector box "holds the labelled face" when its IoU with the 68 points' bounding box is at least
#: this (trainer.frames.best_box accepts a match above 0.3); boxes between NEGATIVE_IOU and this are
#: half-faces and left out of training.
FACE_IOU = 0.3
NEGATIVE_IOU = 0.05
#: Mined boxes that overlap each other this much (same frame) are one box.
SAME_BOX_IOU = 0.7
#: Random squares per frame away from the labelled face (random_boxes).
BELOW_CROPS_PER_FRAME = 2
NEAR_CROPS_PER_FRAME = 2
ANYWHERE_CROPS_PER_FRAME = 1
#: A box overlapping the labelled face a little (IoU under FACE_IOU) whose centre is at least this many
#: face sides below the face's centre holds a chin, a neck, a collar or a tie: the phantoms the
#: held-out frames showed most (contact sheets of such mined boxes: all chin/collar/tie crops).
COLLAR_BELOW = 0.45
#: Random squares kept per turned copy (of random_boxes' five), when mining turned copies.
TURNED_RANDOM_PER_ANGLE = 1
MIN_RECALL = 0.997


@dataclass
class MinedCrops:
    """Crops with where they came from; `iou` is with the frame's labelled face, `strictness` the highest
    min_neighbors at which the detector still returned the box (0: not a detector box)."""

    crops: np.ndarray  # (N, 96, 96) uint8
    frames: np.ndarray  # (N,) frame file names
    people: np.ndarray  # (N,)
    boxes: np.ndarray  # (N, 4) x, y, w, h
    iou: np.ndarray  # (N,)
    below: np.ndarray  # (N,) box centre below the labelled face's centre, in face sides (below_face)
    strictness: np.ndarray  # (N,) int
    #: the box's turn (degrees, as core.detector's turned boxes): 0 for boxes of the upright frame
    angle: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        if len(self.angle) != len(self.crops):  # a cache mined before turned copies: every box upright
            self.angle = np.zeros(len(self.crops))

    def save(self, path: Path) -> None:
        with atomic_path(path) as tmp:
            np.savez_compressed(tmp, **asdict(self))

    @classmethod
    def load(cls, path: Path) -> MinedCrops:
        with np.load(path, allow_pickle=False) as f:
            return cls(**{k: f[k] for k in cls.__dataclass_fields__ if k in f.files})

    def subset(self, mask: np.ndarray) -> MinedCrops:
        return MinedCrops(**{k: v[mask] for k, v in asdict(self).items()})


def label_box(points68: np.ndarray) -> np.ndarray:
    """The labelled face as an (x, y, w, h) box: the bounding box of its 68 points."""
    lo, hi = points68.min(0), points68.max(0)
    return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])


def turned_label_iou(box_xywha: np.ndarray, label: np.ndarray) -> float:
    """IoU of a turned box (x, y, w, h, angle_deg) with the labelled face's box as it is (upright in the frame): the
    two squares' own overlap, so a box on a corner of a face does not count as the face (the upright bounds of
    turned points, as trainer.frames.label_ious takes them to match a detection, are larger by up to 40% at 45 deg)."""
    return turned_box_iou(np.asarray(box_xywha, dtype=np.float64), np.append(np.asarray(label, np.float64), 0.0))


def below_face(box: np.ndarray, label: np.ndarray) -> float:
    """How far the box's centre sits below the labelled face's centre, in labelled face sides."""
    return float((box[1] + box[3] / 2 - label[1] - label[3] / 2) / max(label[2], label[3]))


def detector_boxes(gray: np.ndarray, detector: FaceDetector) -> list[tuple[np.ndarray, int]]:
    """(box, strictness) of every distinct detector box at every sensitivity and scale factor."""
    found: list[list] = []  # [box, strictness]
    for scale in MINED_SCALE_FACTORS:
        settings = DetectorSettings(scale_factor=scale)
        _add_distinct(found, detector.detect_at_sensitivities(gray, MINED_MIN_NEIGHBORS, settings))
    return [(b, k) for b, k in found]


def _add_distinct(found: list[list], boxes_by_strictness: dict[int, np.ndarray]) -> None:
    """Add each box to `found` ([box, strictness] pairs) unless one there is the same box (IoU above
    SAME_BOX_IOU), which then keeps the stricter of the two sensitivities that found it."""
    for k, boxes in boxes_by_strictness.items():
        for box in boxes:
            same = next((f for f in found if box_iou(f[0], box) > SAME_BOX_IOU), None)
            if same is None:
                found.append([box.astype(float), k])
            else:
                same[1] = max(same[1], k)


def turned_detector_boxes(gray: np.ndarray, detector: FaceDetector, roll: RollSearch,
                          ) -> list[tuple[float, np.ndarray, np.ndarray, list[tuple[np.ndarray, int]]]]:
    """Per angle of `roll`: (angle, the copy, its matrix, (box in the copy, strictness) of every distinct
    detector box at every sensitivity), the copies made as core.detector's any-roll search makes them."""
    out = []
    for angle in roll.angles_deg:
        if angle == 0:
            continue
        copy, matrix, inner = turned_copy(gray, angle, DetectorSettings(), roll)
        found: list[list] = []
        _add_distinct(found, detector.detect_at_sensitivities(copy, MINED_MIN_NEIGHBORS, inner))
        out.append((float(angle), copy, matrix, [(b, k) for b, k in found]))
    return out


def random_boxes(gray: np.ndarray, label: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Random squares that hold no labelled face: near it (most below it: neck, collar, tie, chest, where
    the cascade's phantoms sit), around it, and anywhere in the frame."""
    h, w = gray.shape
    side_px = max(label[2], label[3])
    centre = label[:2] + label[2:] / 2
    out = []
    for where in ["below"] * BELOW_CROPS_PER_FRAME + ["near"] * NEAR_CROPS_PER_FRAME + ["anywhere"] * ANYWHERE_CROPS_PER_FRAME:
        for _ in range(20):
            if where == "below":
                side = side_px * rng.uniform(0.5, 1.3)
                x, y = centre + np.array([rng.uniform(-0.6, 0.6), rng.uniform(0.7, 1.8)]) * side_px - side / 2
            elif where == "near":
                side = side_px * rng.uniform(0.35, 1.0)
                x, y = centre + rng.uniform(-1.5, 1.5, 2) * side_px - side / 2
            else:
                side = side_px * rng.uniform(0.5, 1.3)
                x, y = rng.uniform(-0.2 * side, w - 0.8 * side), rng.uniform(-0.2 * side, h - 0.8 * side)
            box = np.array([x, y, side, side])
            iou = box_iou(box, label)
            if iou < NEGATIVE_IOU / 2 or (iou < FACE_IOU / 2 and below_face(box, label) >= COLLAR_BELOW):
                out.append(box)
                break
    return out


def mine(frames: str | os.PathLike, out: Path, seed: int = 0, progress: Callable[[int, int], None] | None = None,
         reuse: MinedCrops | None = None, roll: RollSearch | None = None,
         turned_random_per_angle: int = TURNED_RANDOM_PER_ANGLE) -> MinedCrops:
    """Mine every labelled frame of a 68-point source (trainer.frames.FrameSource) into `out` (.npz).

    `reuse`: an earlier mining whose upright detector boxes are taken as they are (the cascade passes are the
    slow part); crops, overlaps and random boxes are made again.
    `roll`: also mine the turned copies of each frame that this any-roll search makes: their detector boxes at
    every sensitivity and `turned_random_per_angle` random squares per copy, each kept as a turned box of the
    frame (angle = the copy's angle) and cropped de-rotated from the frame, as the search's verifier reads it.
    """
    source = FrameSource(frames)
    names, points68 = source.read_labels()
    detector = FaceDetector()
    rng = np.random.default_rng(seed)
    earlier: dict[str, list] = {}
    if reuse is not None:
        for name, box, k, a in zip(reuse.frames, reuse.boxes, reuse.strictness, reuse.angle):
            if k > 0 and a == 0:
                earlier.setdefault(str(name), []).append((box, int(k)))
    rows: dict[str, list] = {k: [] for k in MinedCrops.__dataclass_fields__}

    def add(gray: np.ndarray, name: str, box: np.ndarray, iou: float, below: float, strictness: int,
            angle: float) -> None:
        rows["crops"].append(crop_from_box(box, angle_deg=angle).extract(gray))
        rows["frames"].append(name)
        rows["people"].append(person_of(name))
        rows["boxes"].append(box)
        rows["iou"].append(iou)
        rows["below"].append(below)
        rows["strictness"].append(strictness)
        rows["angle"].append(angle)

    max_outside = roll.max_outside_share if roll else 1.0
    for i, (name, pts) in enumerate(zip(names, points68)):
        gray = source.read_gray(name)
        if gray is not None:
            label = label_box(pts)
            found = earlier.get(name, []) if reuse is not None else detector_boxes(gray, detector)
            for box, strictness in found + [(b, 0) for b in random_boxes(gray, label, rng)]:
                add(gray, name, box, box_iou(box, label), below_face(box, label), strictness, 0.0)
            for angle, copy, matrix, boxes in (turned_detector_boxes(gray, detector, roll) if roll else []):
                # overlaps as the copy shows the face: its labelled points moved into the copy
                seen = label_box(pts @ matrix[:, :2].T + matrix[:, 2])
                randoms = random_boxes(copy, seen, rng)
                picked = rng.permutation(len(randoms))[:turned_random_per_angle]
                for box, strictness in boxes + [(randoms[j], 0) for j in picked]:
                    turned = boxes_from_copy(box, matrix, angle)[0]
                    if strictness and outside_share(turned, gray.shape)[0] > max_outside:
                        continue  # not a candidate of the search either
                    add(gray, name, turned[:4], turned_label_iou(turned, label), below_face(box, seen), strictness,
                        angle)
        if progress:
            progress(i + 1, len(names))
    mined = MinedCrops(np.stack(rows["crops"]).astype(np.uint8), np.array(rows["frames"]), np.array(rows["people"]),
                       np.array(rows["boxes"], np.float64), np.array(rows["iou"]), np.array(rows["below"]),
                       np.array(rows["strictness"], int), np.array(rows["angle"], np.float64))
    out.parent.mkdir(parents=True, exist_ok=True)
    mined.save(out)
    return mined


#: Hard negatives that are real faces in the background (frame file names), found by looking at
#: contact sheets of every mined box that holds no labelled face (`python -m trainer train-verifier
#: --sheets DIR`). Every detector box of these frames away from the labelled face is left out of
#: training and of the precision figures: a background face is not a phantom.
BACKGROUND_FACES: frozenset[str] = frozenset({
    "Fernando_Sanz_50.jpg", "Fernando_Sanz_51.jpg", "Fernando_Sanz_52.jpg",  # a small face top left
    "Raja_Zafar-ul-Haq_22.jpg",  # a man at the right
    "Mary_Robinson_20.jpg", "Mary_Robinson_22.jpg",  # people behind her
    "Yuri_Fedotov_40.jpg", "Yuri_Fedotov_42.jpg",  # a face on a screen
    "Chita_Rivera_11.jpg",  # the woman beside her
    "Adam_Sandler_00.jpg", "Adam_Sandler_01.jpg",  # a passer-by
    "Tina_Brown_51.jpg",  # a face in the picture behind her
    "Barry_Alvarez_30.jpg", "Kit_Bond_50.jpg",  # small faces in the background
    "Ernie_Grunfeld_50.jpg", "Harrison_Ford_22.jpg",  # too small to tell: left out rather than taught as "no face"
    "Alicia_Silverstone_22.jpg", "Chris_Matthews_32.jpg",  # a whole person / a face in a box below the face
})


@dataclass(frozen=True)
class VerifierConfig:
    """Every number of the verifier's training; saved in its card."""

    widths: tuple[int, ...] = (8, 16, 32, 64)
    dropout: float = 0.3
    epochs: int = 14
    batch_size: int = 64
    learning_rate: float = 2e-3
    synthetic: int = 2000  # face-free images the code makes (synthetic_negatives)
    hard_repeat: int = 4  # detector boxes without a face are few and the ones that matter: seen this often per epoch
    min_recall: float = MIN_RECALL
    seed: int = 0
    #: each crop brought to zero mean and unit variance inside the model, before the convolutions, so a darker or
    #: brighter frame reads alike (a contrast change only partly: the layer's epsilon, 1e-3, is a good part of a dim
    #: face's variance); off in the shipped verifier: README, "Faces at any tilt", for the one it made and why not
    contrast_norm: bool = False


def build_verifier(widths: tuple[int, ...] = VerifierConfig.widths, dropout: float = VerifierConfig.dropout,
                   contrast_norm: bool = VerifierConfig.contrast_norm):
    """Conv + batch norm + ReLU + max-pool per width, global average pooling, one sigmoid: few channels,
    so a box costs a fraction of a millisecond through ONNX Runtime. `contrast_norm` is a layer of the model, so
    the ONNX twin and every caller get it without code of their own."""
    import keras
    from keras import layers

    inputs = keras.Input(CROP_SHAPE, name="crop")
    x = inputs
    if contrast_norm:
        x = layers.LayerNormalization(axis=(1, 2, 3), center=False, scale=False, name="contrast")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(conv_blocks(x, widths))
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="face")(x)
    return keras.Model(inputs, outputs, name="face_verifier")


def synthetic_negatives(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 96, 96) uint8 face-free images: blurred noise, gradients, stripes, checkerboards, blobs."""
    yy, xx = np.mgrid[0:CROP_SIZE, 0:CROP_SIZE].astype(np.float32) / CROP_SIZE
    out = np.empty((n, CROP_SIZE, CROP_SIZE), np.uint8)
    for i in range(n):
        kind = i % 5
        if kind == 0:  # noise at a random grain
            img = cv2.GaussianBlur(rng.normal(0, 1, (CROP_SIZE, CROP_SIZE)).astype(np.float32), (0, 0),
                                   rng.uniform(0.5, 8))
        elif kind == 1:  # linear gradient at a random angle
            a = rng.uniform(0, 2 * np.pi)
            img = np.cos(a) * xx + np.sin(a) * yy
        elif kind == 2:  # stripes (fabric, blinds)
            a, f = rng.uniform(0, np.pi), rng.uniform(2, 20)
            img = np.sin(2 * np.pi * f * (np.cos(a) * xx + np.sin(a) * yy) + rng.uniform(0, 6.3))
        elif kind == 3:  # checkerboard / tiles
            f = float(rng.integers(2, 12))
            img = ((np.floor(xx * f) + np.floor(yy * f)) % 2).astype(np.float32)
        else:  # blobs (ellipses of random grey)
            img = np.full((CROP_SIZE, CROP_SIZE), rng.uniform(0, 1), np.float32)
            for _ in range(rng.integers(1, 6)):
                centre = tuple(int(v) for v in rng.integers(0, CROP_SIZE, 2))
                axes = tuple(int(v) for v in rng.integers(5, 40, 2))
                cv2.ellipse(img, centre, axes, float(rng.uniform(0, 180)), 0, 360, float(rng.uniform(0, 1)), -1)
            img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 3))
        img = img - img.min()
        img = img / max(float(img.max()), 1e-6) * rng.uniform(60, 255) + rng.uniform(0, 100)
        img = img + rng.normal(0, rng.uniform(0, 8), img.shape)
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def is_face(mined: MinedCrops) -> np.ndarray:
    """Detector boxes that hold the labelled face."""
    return (mined.strictness > 0) & (mined.iou >= FACE_IOU)


def is_hard_negative(mined: MinedCrops, background_faces: frozenset[str] = BACKGROUND_FACES) -> np.ndarray:
    """Detector boxes that hold no face: away from the labelled one or on its chin/collar, not in a frame with a
    background face."""
    away = (mined.iou < NEGATIVE_IOU) | ((mined.iou < FACE_IOU) & (mined.below >= COLLAR_BELOW))
    return (mined.strictness > 0) & away & ~np.isin(mined.frames, list(background_faces))


def is_background_crop(mined: MinedCrops, background_faces: frozenset[str] = BACKGROUND_FACES) -> np.ndarray:
    """Random squares away from the labelled face, not in a frame with a background face."""
    return (mined.strictness == 0) & ~np.isin(mined.frames, list(background_faces))


@dataclass
class VerifierSets:
    """Crops and labels (1 = face) of one group of people, with what each crop is."""

    crops: np.ndarray
    labels: np.ndarray
    kinds: np.ndarray  # "face", "detector", "background", "synthetic"
    strictness: np.ndarray

    def counts(self) -> dict:
        return {str(k): int(n) for k, n in zip(*np.unique(self.kinds, return_counts=True))}


def sets_for(mined: MinedCrops, people: set[str] | None, exclude: Set[str] = frozenset(),
             synthetic: np.ndarray | None = None) -> VerifierSets:
    """The verifier's crops of `people` (None: everyone but `exclude`)."""
    mine_mask = np.isin(mined.people, list(people)) if people is not None else ~np.isin(mined.people, list(exclude))
    m = mined.subset(mine_mask)
    face, hard, background = is_face(m), is_hard_negative(m), is_background_crop(m)
    kinds = np.where(face, "face", np.where(hard, "detector", np.where(background, "background", "")))
    keep = kinds != ""
    crops, kinds, strictness = m.crops[keep], kinds[keep], m.strictness[keep]
    if synthetic is not None and len(synthetic):
        crops = np.concatenate([crops, synthetic])
        kinds = np.concatenate([kinds, np.full(len(synthetic), "synthetic")])
        strictness = np.concatenate([strictness, np.zeros(len(synthetic), int)])
    return VerifierSets(crops, (kinds == "face").astype(np.float32), kinds, strictness)


def threshold_for_recall(face_scores: np.ndarray, min_recall: float) -> float:
    """The highest threshold that keeps at least `min_recall` of these faces (score >= threshold)."""
    s = np.sort(np.asarray(face_scores, dtype=np.float64))
    misses = int(np.floor((1 - min_recall) * len(s) + 1e-9))
    return float(s[misses])


def verifier_metrics(sets: VerifierSets, scores: np.ndarray, threshold: float) -> dict:
    """Recall of faces, precision among detector boxes (all sensitivities, and the default one), rejection rates."""
    accepted = scores >= threshold
    face, detector = sets.kinds == "face", sets.kinds == "detector"

    def precision(mask: np.ndarray) -> float:
        tp, fp = int((accepted & face & mask).sum()), int((accepted & detector & mask).sum())
        return round(tp / max(tp + fp, 1), 4)

    default = sets.strictness >= DetectorSettings().min_neighbors
    out = {
        "faces": int(face.sum()),
        "recall": round(float(accepted[face].mean()), 4) if face.any() else None,
        "precision_all_sensitivities": precision(np.ones_like(face)),
        "precision_default_sensitivity": precision(default),
        "detector_negatives": int(detector.sum()),
        "detector_negatives_default_sensitivity": int((detector & default).sum()),
    }
    for kind in ("detector", "background", "synthetic"):
        mask = sets.kinds == kind
        if mask.any():
            out[f"{kind}_rejected"] = round(float((~accepted[mask]).mean()), 4)
    out["detector_rejected_default_sensitivity"] = (
        round(float((~accepted[detector & default]).mean()), 4) if (detector & default).any() else None)
    return out


def contact_sheets(mined: MinedCrops, mask: np.ndarray, out_dir: Path, per_sheet: int = 80, cols: int = 10,
                   thumb: int = 72) -> list[Path]:
    """PNG sheets of the masked crops, each captioned with its index, frame and strictness, to look at."""
    out_dir.mkdir(parents=True, exist_ok=True)
    index = np.flatnonzero(mask)
    index = index[np.argsort(-mined.strictness[index], kind="stable")]
    paths = []
    for sheet, start in enumerate(range(0, len(index), per_sheet)):
        chunk = index[start:start + per_sheet]
        rows = int(np.ceil(len(chunk) / cols))
        cell_h = thumb + 24
        canvas = np.full((rows * cell_h, cols * thumb), 255, np.uint8)
        for j, i in enumerate(chunk):
            r, c = divmod(j, cols)
            canvas[r * cell_h:r * cell_h + thumb, c * thumb:(c + 1) * thumb] = cv2.resize(mined.crops[i], (thumb, thumb))
            name = Path(str(mined.frames[i])).stem
            cv2.putText(canvas, f"{i} s{mined.strictness[i]}", (c * thumb + 1, r * cell_h + thumb + 9),
                        cv2.FONT_HERSHEY_PLAIN, 0.7, 0, 1)
            cv2.putText(canvas, name[-14:], (c * thumb + 1, r * cell_h + thumb + 20), cv2.FONT_HERSHEY_PLAIN, 0.65, 0, 1)
        path = out_dir / f"sheet-{sheet:03d}.png"
        cv2.imwrite(str(path), canvas)
        paths.append(path)
    return paths


def _weighted_batches(train: VerifierSets, batch_size: int, class_weight: dict[int, float], seed: int) -> Any:
    """A keras PyDataset of shuffled, freshly augmented (crops, labels, class weights) batches."""
    import keras

    no_points = np.full((batch_size, 15, 2), np.nan, np.float32)
    weights = np.where(train.labels > 0.5, class_weight[1], class_weight[0]).astype(np.float32)

    class WeightedBatches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.order = self.rng.permutation(len(train.crops))

        def __len__(self) -> int:
            return int(np.ceil(len(train.crops) / batch_size))

        def __getitem__(self, i: int):
            idx = self.order[i * batch_size:(i + 1) * batch_size]
            images, _ = augment_batch(train.crops[idx], no_points[:len(idx)], self.rng, AugmentConfig())
            return to_model_input(images), train.labels[idx], weights[idx]

        def on_epoch_end(self) -> None:
            self.order = self.rng.permutation(len(train.crops))

    return WeightedBatches()


def _progress_callback(bus: ev.EventBus, config: VerifierConfig, batches: int) -> Any:
    """The keras Callback that turns fit() progress into the training events (CLI bar, any subscriber)."""
    import keras

    class Progress(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch, self.started = epoch, time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            bus.emit(ev.BatchProgress(stage=0, epoch=self.epoch, batch=batch + 1, batches=batches))

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            bus.emit(ev.EpochEnd(
                stage=0, epoch=epoch, epochs=config.epochs, loss=float(logs.get("loss", np.nan)),
                val_loss=float(logs.get("val_loss", np.nan)), batch_size=config.batch_size, steps=batches,
                lr=float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
                epoch_s=round(time.perf_counter() - self.started, 2),
                metrics={k: round(float(v), 4) for k, v in logs.items() if "auc" in k}))

    return Progress()


def _fit(config: VerifierConfig, train: VerifierSets, val: VerifierSets, bus: ev.EventBus) -> Any:
    """One fit: hard negatives repeated `hard_repeat` times, classes weighted to balance, the learning rate on a
    cosine schedule over every step of the run (in the optimizer), batches augmented afresh each epoch."""
    import keras

    keras.utils.set_random_seed(config.seed)
    hard = np.flatnonzero(train.kinds == "detector")
    order = np.concatenate([np.arange(len(train.crops))] + [hard] * (config.hard_repeat - 1))
    train = VerifierSets(train.crops[order], train.labels[order], train.kinds[order], train.strictness[order])
    positives = float(train.labels.mean())
    batches = _weighted_batches(train, config.batch_size, {0: 0.5 / (1 - positives), 1: 0.5 / positives}, config.seed)
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, config.epochs * len(batches))
    model = build_verifier(config.widths, config.dropout, config.contrast_norm)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="binary_crossentropy",
                  metrics=[keras.metrics.AUC(name="auc")])
    bus.emit(ev.StageStart(stage=0, stages=1, name="verifier", phase="verifier", lr=config.learning_rate,
                           batch_size=config.batch_size, epochs=config.epochs, rows=len(train.crops)))
    model.fit(batches, epochs=config.epochs, validation_data=(to_model_input(val.crops), val.labels), verbose=0,
              callbacks=[_progress_callback(bus, config, len(batches))])
    bus.emit(ev.StageEnd(stage=0, name="verifier"))
    return model


def train_verifier(frames: str | os.PathLike, keypoint_model: str | os.PathLike, out: str | os.PathLike,
                   mined_path: str | os.PathLike, config: VerifierConfig = VerifierConfig(),
                   log: Callable[[str], None] = print, command: str | None = None,
                   bus: ev.EventBus | None = None, roll: RollSearch | None = None,
                   exclude_people: frozenset[str] = frozenset()) -> VerifierCard:
    """Mine (or reuse `mined_path`), train, choose the threshold on validation people, save `out` + card.

    Training progress goes to `bus` as the recipe's events (run, stage, batches, epochs, end, error); `log`
    gets the lines about mining and the data. `roll`: mine the turned copies of this any-roll search too (mine);
    without it only upright boxes are learnt, even from a cache mined with turned copies, so that verifiers of
    both kinds can share one cache. `exclude_people`: training people left out, to judge verifiers on people
    none of them saw (listed in the card)."""
    bus = bus or ev.EventBus()
    try:
        return _train_verifier(frames, keypoint_model, Path(out), Path(mined_path), config, log, command, bus, roll,
                               exclude_people)
    except Exception as exc:
        bus.emit(ev.RunError(message=f"{type(exc).__name__}: {exc}"))
        raise


def _train_verifier(frames: str | os.PathLike, keypoint_model: str | os.PathLike, out: Path, mined_path: Path,
                    config: VerifierConfig, log: Callable[[str], None], command: str | None,
                    bus: ev.EventBus, roll: RollSearch | None = None,
                    exclude_people: frozenset[str] = frozenset()) -> VerifierCard:
    started = time.perf_counter()
    split = read_card(keypoint_model).data
    val_people, test_people = set(split.val_people or []), set(split.test_people or [])
    if not val_people or not test_people:
        raise ValueError(f"{Path(keypoint_model).name}'s card lists no validation/test people to split by.")
    if mined_path.is_file():
        mined = MinedCrops.load(mined_path)
        log(f"reusing {len(mined.crops)} mined crops from {mined_path}")
    else:
        log(f"mining detector boxes at min_neighbors {MINED_MIN_NEIGHBORS[0]}..{MINED_MIN_NEIGHBORS[-1]} into {mined_path}")
        mined = mine(frames, mined_path, seed=config.seed, roll=roll,
                     progress=lambda d, n: log(f"mined {d}/{n}") if d % 500 == 0 or d == n else None)
    if roll is None and (mined.angle != 0).any():
        log(f"upright boxes only: {int((mined.angle != 0).sum())} boxes of turned copies in {mined_path} left out")
        mined = mined.subset(mined.angle == 0)
    if exclude_people & (val_people | test_people):
        raise ValueError("--exclude-people names validation or test people; they are never trained on anyway.")
    rng = np.random.default_rng(config.seed + 1)
    synthetic = synthetic_negatives(config.synthetic, rng)
    n_val_synth = config.synthetic // 10
    train = sets_for(mined, None, exclude=val_people | test_people | exclude_people, synthetic=synthetic[n_val_synth:])
    val = sets_for(mined, val_people, synthetic=synthetic[:n_val_synth])
    test = sets_for(mined, test_people, synthetic=synthetic_negatives(n_val_synth, np.random.default_rng(config.seed + 2)))
    log(f"train {train.counts()}; val {val.counts()}; test {test.counts()}")
    bus.emit(ev.RunStart(run_name=out.stem, data=str(mined_path), rows=len(mined.crops), train_rows=len(train.crops),
                         val_rows=len(val.crops), test_rows=len(test.crops), stages=1, stage_names=["verifier"]))
    model = _fit(config, train, val, bus)

    def scores(sets: VerifierSets) -> np.ndarray:
        return model.predict(to_model_input(sets.crops), batch_size=256, verbose=0).reshape(-1)

    val_scores = scores(val)
    threshold = threshold_for_recall(val_scores[val.kinds == "face"], config.min_recall)
    metrics = {"val": verifier_metrics(val, val_scores, threshold)}
    metrics["test"] = verifier_metrics(test, scores(test), threshold)  # reported once, never used to choose
    save_model(inference_copy(model), out)
    card = VerifierCard(
        model=out.name,
        kind="face verifier",
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        command=command,
        wall_s=round(time.perf_counter() - started, 1),
        threshold=round(threshold, 6),
        threshold_rule=f"highest that keeps >= {config.min_recall:.1%} of the validation people's face boxes",
        input="core.geometry.crop_from_box of a detector box, 96x96 grayscale in [0, 1]",
        split={"from": str(keypoint_model), "val_people": sorted(val_people), "test_people": sorted(test_people),
               **({"excluded_from_training": sorted(exclude_people)} if exclude_people else {})},
        data={"frames": str(frames), "mined": str(mined_path), "train": train.counts(), "val": val.counts(),
              "test": test.counts(), "mined_min_neighbors": list(MINED_MIN_NEIGHBORS), "face_iou": FACE_IOU,
              "negative_iou": NEGATIVE_IOU, "turned_angles": sorted({float(a) for a in mined.angle if a}),
              "background_face_frames_dropped": sorted(BACKGROUND_FACES)},
        config=asdict(config),
        metrics=metrics,
    )
    card.write(out)
    bus.emit(ev.RunEnd(model_path=str(out), metrics={"threshold": card.threshold, **metrics},
                       wall_s=card.wall_s or 0.0))
    log(json.dumps({"threshold": card.threshold, "metrics": metrics}, indent=1))
    return card


#: Held-out frames (validation and test people) with a real face in the background, found by looking
#: at every extra detector box on them (`python -m trainer phantoms --sheets DIR`): a box on such a
#: face is not a phantom. Recorded here to measure phantoms, never used to train or to choose anything.
HELD_OUT_BACKGROUND_FACES: dict[str, tuple[int, int, int, int]] = {  # frame -> the background face's box
    "Lindsey_Graham_00.jpg": (131, 56, 99, 99),  # validation: the man behind him (the test people have none)
}


@dataclass
class PhantomReport:
    """Detection on labelled frames (one labelled face each): faces kept, faces with two boxes, phantoms."""

    frames: int = 0
    faces_kept: int = 0
    faces_with_two_boxes: list[str] = field(default_factory=list)
    phantom_frames: list[str] = field(default_factory=list)  # a box that holds no face
    background_face_frames: list[str] = field(default_factory=list)  # an extra box on a listed background face
    extra_boxes: list[tuple[str, list[int]]] = field(default_factory=list)  # every box away from the labelled face

    def summary(self) -> dict:
        n = max(self.frames, 1)
        return {"frames": self.frames, "faces_kept": round(self.faces_kept / n, 4),
                "faces_with_two_boxes": len(self.faces_with_two_boxes),
                "phantom_frames": len(self.phantom_frames), "phantom_rate": round(len(self.phantom_frames) / n, 4),
                "background_face_frames": len(self.background_face_frames)}


def phantom_report(pipeline, frames: str | os.PathLike, people: set[str],
                   background_faces: dict[str, tuple] = HELD_OUT_BACKGROUND_FACES) -> PhantomReport:
    """Run `pipeline.detect` (the app's detection step) on every labelled frame of `people`."""
    source = FrameSource(frames)
    names, points68 = source.read_labels()
    report = PhantomReport()
    for name, pts in zip(names, points68):
        if person_of(name) not in people:
            continue
        gray = source.read_gray(name)
        if gray is None:
            continue
        report.frames += 1
        found = pipeline.detect(gray)
        boxes = found.boxes_xywh
        iou = label_ious(boxes, pts, found.angles_deg)  # a turned box against the face as it sees it
        report.faces_kept += bool((iou >= FACE_IOU).any())
        if (iou >= FACE_IOU).sum() > 1:
            report.faces_with_two_boxes.append(name)
        extra = [b for b, v in zip(boxes, iou) if v < FACE_IOU]
        report.extra_boxes += [(name, [int(v) for v in b]) for b in extra]
        on_background_face = [name in background_faces and box_iou(b, background_faces[name]) > FACE_IOU for b in extra]
        if not all(on_background_face):
            report.phantom_frames.append(name)
        elif extra:
            report.background_face_frames.append(name)
    return report


def extra_box_sheets(report: PhantomReport, frames: str | os.PathLike, out_dir: Path, cols: int = 5,
                     cell: int = 200) -> list[Path]:
    """PNG sheets of every frame with an extra box (red, numbered as in report.extra_boxes), to look at."""
    source = FrameSource(frames)
    out_dir.mkdir(parents=True, exist_ok=True)
    cells = []
    for i, (name, box) in enumerate(report.extra_boxes):
        gray = source.read_gray(name)
        if gray is None:
            continue
        image = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
        x, y, w, h = box
        cv2.rectangle(image, (x, y), (x + w, y + h), (0, 0, 255), 2)
        scale = cell / max(image.shape[:2])
        image = cv2.copyMakeBorder(cv2.resize(image, None, fx=scale, fy=scale), 0, 0, 0, 0, cv2.BORDER_CONSTANT)
        tile = np.full((cell + 16, cell, 3), 255, np.uint8)
        tile[:image.shape[0], :image.shape[1]] = image
        cv2.putText(tile, f"{i} {Path(name).stem[-22:]}", (2, cell + 12), cv2.FONT_HERSHEY_PLAIN, 0.8, (0, 0, 0), 1)
        cells.append(tile)
    paths = []
    per_sheet = cols * 4
    for sheet, start in enumerate(range(0, len(cells), per_sheet)):
        chunk = cells[start:start + per_sheet]
        chunk += [np.full_like(cells[0], 255)] * (-len(chunk) % cols)
        rows = [np.hstack(chunk[r:r + cols]) for r in range(0, len(chunk), cols)]
        path = out_dir / f"extra-{sheet:03d}.png"
        cv2.imwrite(str(path), np.vstack(rows))
        paths.append(path)
    return paths
