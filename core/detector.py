"""Face detection: OpenCV's Haar frontal-face cascade on the grayscale image (the recipe's detector).

Large images are shrunk to `max_side` before detection (the cascade's cost grows with pixels and
faces in photos are rarely smaller than 1/20 of the long side); boxes come back in the caller's
pixels. Defaults were chosen on ../shared/data/photos and the YouTube-faces frames: scale 1.1 and 5
neighbours find every labelled face there.

The cascade's own grouping merges only boxes of similar position *and* size, so one face can come
back twice at two scales (README, "One box per face"). `one_box_per_face` removes
them here, so every caller (photo, CLI, webcam, import) gets one box per face: non-maximum
suppression (cv2.dnn.NMSBoxes, scored by the cascade's neighbour count), then a containment rule.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path

import cv2
import numpy as np

from core.geometry import box_intersection, turn_image

CASCADE_FILE = "haarcascade_frontalface_default.xml"


@dataclass(frozen=True)
class DetectorSettings:
    """Haar parameters. Lower `min_neighbors` = more sensitive (more faces, more false alarms)."""

    scale_factor: float = 1.1
    min_neighbors: int = 5
    min_size_fraction: float = 0.04  # smallest face side, as a fraction of the image's shorter side
    max_side: int = 800  # detect on a copy no larger than this (pixels on the long side)


#: cv2.CascadeClassifier.detectMultiScale's grouping tolerance (its GROUP_EPS).
GROUP_EPS = 0.2
#: Boxes overlapping more than this (intersection over union) are one face: the one with more
#: neighbours stays. Two real faces side by side overlap far less.
NMS_IOU = 0.3
#: A box with at least this fraction of its own area inside a larger kept box is dropped (a small
#: box on the eyes/nose of a face the cascade also found at a larger scale; IoU there is often < 0.3).
CONTAINED_FRACTION = 0.6


def one_box_per_face(boxes_xywh: np.ndarray, scores: np.ndarray | None = None,
                     nms_iou: float = NMS_IOU, contained_fraction: float = CONTAINED_FRACTION) -> np.ndarray:
    """Indices of the boxes to keep: NMS by score (default: area), then drop boxes mostly inside a larger kept one.

    Returned indices are sorted largest box first.
    """
    boxes = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return np.zeros(0, dtype=int)
    areas = boxes[:, 2] * boxes[:, 3]
    scores = areas if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
    kept = np.asarray(cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), 0.0, nms_iou), dtype=int).reshape(-1)
    kept = kept[np.argsort(-areas[kept], kind="stable")]
    out: list[int] = []
    for i in kept:
        if not any(box_intersection(boxes[i], boxes[j]) >= contained_fraction * areas[i] for j in out):
            out.append(int(i))
    return np.asarray(out, dtype=int)


class FaceDetector:
    """Finds face boxes (x, y, w, h in image pixels) in a grayscale image."""

    def __init__(self, settings: DetectorSettings | None = None):
        self.settings = settings or DetectorSettings()
        # One cascade per thread: cv2.CascadeClassifier keeps per-call state, so two threads sharing one
        # (the app's sessions share one cached pipeline) get wrong boxes or OpenCV assertions.
        self._local = threading.local()
        self._local.cascade = self._new_cascade()

    @staticmethod
    def _new_cascade() -> cv2.CascadeClassifier:
        folder = cv2.data.haarcascades  # type: ignore[attr-defined]  # cv2.data has no stubs
        cascade = cv2.CascadeClassifier(folder + CASCADE_FILE)
        if cascade.empty():
            raise RuntimeError(f"OpenCV could not load {CASCADE_FILE} from {folder}")
        return cascade

    @property
    def _cascade(self) -> cv2.CascadeClassifier:
        """This thread's cascade, loaded on its first detection."""
        cascade = getattr(self._local, "cascade", None)
        if cascade is None:
            cascade = self._local.cascade = self._new_cascade()
        return cascade

    def detect(self, gray: np.ndarray, settings: DetectorSettings | None = None) -> np.ndarray:
        """Boxes as an (N, 4) int array (x, y, w, h), one per face (see one_box_per_face), largest first."""
        s = settings or self.settings
        return self.detect_at_sensitivities(gray, (s.min_neighbors,), s)[s.min_neighbors]

    def detect_at_sensitivities(self, gray: np.ndarray, min_neighbors: tuple[int, ...],
                                settings: DetectorSettings | None = None) -> dict[int, np.ndarray]:
        """`detect`'s boxes for each min_neighbors value, from one cascade pass (cv2's own grouping,
        cv2.groupRectangles with its eps 0.2, applied once per value: what detectMultiScale does inside)."""
        s = settings or self.settings
        if gray.ndim != 2:
            raise ValueError(f"detect() takes a 2-D grayscale image, got shape {gray.shape}")
        h, w = gray.shape
        factor = min(1.0, s.max_side / max(h, w))
        small = cv2.resize(gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA) if factor < 1 else gray
        min_side = max(20, int(round(s.min_size_fraction * min(small.shape))))
        raw = self._cascade.detectMultiScale(small, scaleFactor=s.scale_factor, minNeighbors=0,
                                             minSize=(min_side, min_side))
        return {k: group_windows(raw, k, factor) for k in min_neighbors}


def group_windows(raw: Sequence | np.ndarray, min_neighbors: int, factor: float = 1.0) -> np.ndarray:
    """The cascade's raw windows (minNeighbors 0) grouped as detectMultiScale does at `min_neighbors`
    (cv2.groupRectangles, eps 0.2), scaled back by 1 / `factor`, one box per face. The windows come in the order
    OpenCV's worker threads finished, which varies from call to call on a busy machine; sorted first, so that boxes
    tied on neighbour count and size are always settled the same way (the same image, the same boxes)."""
    windows = sorted(list(map(int, r)) for r in raw)
    grouped, neighbours = cv2.groupRectangles(windows, int(min_neighbors), GROUP_EPS) if windows else ((), ())
    if len(grouped) == 0:
        return np.zeros((0, 4), dtype=int)
    boxes = np.round(np.asarray(grouped, dtype=np.float64).reshape(-1, 4) / factor).astype(int)
    return boxes[one_box_per_face(boxes, np.asarray(neighbours, dtype=np.float64).reshape(-1))]


@dataclass(frozen=True)
class RollSearch:
    """Where the cascade looks for tilted faces: copies of the image turned by each of `angles_deg` (the face
    roll each copy makes upright), each scaled so the image's long side is `copy_side` (no more than the settings'
    `max_side`; larger images shrunk: the copies cost their pixels; smaller ones enlarged: the cascade fires on a
    small face from more of its windows; faces in them are found down to `copy_smallest_face` copy pixels, that is
    `copy_smallest_face` x long side / `copy_side` image pixels, smaller ones only upright),
    at `min_neighbors` = the settings' value minus `sensitivity_boost` (the verifier keeps the phantoms out); the
    upright image at the settings' value minus `upright_boost`."""

    angles_deg: tuple[float, ...] = (-45.0, -30.0, -15.0, 15.0, 30.0, 45.0)
    copy_side: int = 224
    #: the smallest face the copies look for, in the copy's pixels: the first step of the cascade's pyramid (its
    #: 24 px window) costs a third of a copy
    copy_smallest_face: int = 26
    sensitivity_boost: int = 3
    #: copies half a step between (and beyond) `angles_deg`, searched only around the weakest boxes (min_neighbors
    #: 1) of the copies within `between_reach_deg` (whole where no face is found: `whole_between_when_no_face`):
    #: the cascade misses some faces on the copy at their angle and finds them 7.5 deg off, and where it misses a
    #: face outright it usually leaves a weak box on it. None at +-7.5: in a replay on validation people those
    #: copies put boxes that hold no face on upright frames, and the verifier let them through.
    between_angles_deg: tuple[float, ...] = (-52.5, -37.5, -22.5, 22.5, 37.5, 52.5)
    between_reach_deg: float = 7.5
    #: an in-between copy is searched in a window this many box sides around each weak box's centre (overlapping
    #: windows merged), for faces down to `between_smallest` of the smallest weak box's side in it (a weak box sits
    #: on part of a face, or on a face at another scale)
    between_window_sides: float = 1.5
    between_smallest: float = 0.5
    #: how much more sensitive the search's upright pass is than the settings say (0: today's upright boxes exactly;
    #: 1 finds the upright faces the default sensitivity missed, the verifier keeping the phantoms out)
    upright_boost: int = 1
    #: the cascade's scale step on the copies (coarser than the upright pass's: they cost less)
    scale_factor: float = 1.2
    #: each copy is searched a second time, at this finer scale step, in a window around its own weak boxes
    #: (search_around at its own angle), and the in-between copies' windows use it too (None: no second look, the
    #: in-between windows at `scale_factor`): the cascade misses some faces that fall between the scales of the
    #: copies' coarser grid, and usually leaves a weak box on them
    second_look_scale_factor: float | None = 1.1
    #: with a verifier (FacePipeline.detect), the in-between windows and the second look leave out the weak boxes
    #: whose centre lies on a face already accepted from the upright pass and the copies: that face is found, and
    #: the windows around a large face cost most of a copy each. False: around every weak box (as the webcam's
    #: detection process, which has no verifier, always searches)
    skip_found_faces: bool = True
    #: with a verifier (FacePipeline.detect), an image on which all of the above finds no face has its in-between
    #: copies searched whole as well, like the six copies: some faces the cascade misses at the copies' angles
    #: leave no weak box near them, yet stand out on a copy turned half a step further. Images with a face found
    #: cost no more search.
    whole_between_when_no_face: bool = True
    #: a box from a turned copy is a candidate only when no more than this share of its area lies outside the
    #: image: the copy's windows there see the turned canvas's repeated border, not the picture (the upright pass
    #: never looks outside the image)
    max_outside_share: float = 0.05
    #: the verifier score a box from a turned copy needs (above the verifier's own threshold: the copies show it
    #: more non-faces than the upright pass; the flip check below keeps most of them out, so it can be this low);
    #: None: the verifier's own threshold (a verifier that also learnt on the turned copies' boxes,
    #: trainer.verifier.mine with a RollSearch, chose it on them too)
    turned_threshold: float | None = 0.5
    #: added to an accepted upright box's score when boxes compete for one face (one_turned_box_per_face): 1 keeps
    #: every accepted upright box (today's box and crop); 0 lets a better-scored turned box of a tilted face win
    #: over an upright box on part of it, upright boxes winning ties
    upright_bonus: float = 0.0
    #: with a verifier, a box from a turned copy is kept only when the keypoint model (the pipeline's own, float
    #: unless it runs int8) reads its crop and the crop's mirror alike (FacePipeline.flip_disagreement at most
    #: this fraction of the crop side; None: no such check): the verifier alone lets through some of the picture
    #: frames, collars and hair the turned copies fire on
    max_flip_disagreement: float | None = 0.015


def detect_any_roll(detector: FaceDetector, gray: np.ndarray, settings: DetectorSettings | None = None,
                    roll: RollSearch | None = None) -> np.ndarray:
    """Candidate face boxes at any roll within about 10 deg of 0, of `roll.angles_deg` or of its in-between angles,
    as an (N, 5) float array (x, y, w, h, angle_deg): the box (x, y, w, h) turned about its centre by angle_deg, in
    `gray`'s pixels: search_copies's candidates, then search_between's around every one of the copies' weak boxes.
    One face usually comes back from two neighbouring angles: the caller scores every candidate (the verifier, on
    its de-rotated crop) and keeps one per face (one_turned_box_per_face). FacePipeline.detect searches between
    only where the first candidates hold no face yet (RollSearch.skip_found_faces), and searches the in-between
    copies whole where it finds no face at all (RollSearch.whole_between_when_no_face); this search never does
    (no verdict here: the webcam's detection process)."""
    roll = roll or RollSearch()
    found, weak = search_copies(detector, gray, settings, roll)
    return np.vstack([found, search_between(detector, gray, weak, settings, roll)])


def search_copies(detector: FaceDetector, gray: np.ndarray, settings: DetectorSettings | None = None,
                  roll: RollSearch | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The upright pass's and the turned copies' candidates (N, 5), and the copies' weak boxes (M, 5: their boxes
    at min_neighbors 1), where search_between looks harder.

    The upright image goes through `detector.detect` with `settings` (min_neighbors lowered by
    `roll.upright_boost`; 0: its boxes, angle 0, are today's exactly); each turned copy through the same cascade
    at `min_neighbors` lowered by `roll.sensitivity_boost`."""
    s = settings or detector.settings
    roll = roll or RollSearch()
    upright = replace(s, min_neighbors=max(1, s.min_neighbors - roll.upright_boost)) if roll.upright_boost else s
    found, weak = search_turned_copies(detector, gray, roll.angles_deg, s, roll)
    return np.vstack([_with_angle(detector.detect(gray, upright), 0.0), found]), weak


def search_turned_copies(detector: FaceDetector, gray: np.ndarray, angles_deg: tuple[float, ...],
                         settings: DetectorSettings | None = None, roll: RollSearch | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
    """The candidates (N, 5) of whole copies turned by each of `angles_deg` (0 skipped: the upright pass's) at
    the copies' sensitivity, and their weak boxes (M, 5: at min_neighbors 1)."""
    s = settings or detector.settings
    roll = roll or RollSearch()
    found, weak = [np.zeros((0, 5))], [np.zeros((0, 5))]
    for angle in angles_deg:
        if angle == 0:
            continue
        copy, matrix, inner = turned_copy(gray, angle, s, roll)
        by_sensitivity = detector.detect_at_sensitivities(copy, (inner.min_neighbors, 1), inner)
        found.append(_inside(boxes_from_copy(by_sensitivity[inner.min_neighbors], matrix, angle), gray, roll))
        weak.append(boxes_from_copy(by_sensitivity[1], matrix, angle))
    return np.vstack(found), np.vstack(weak)


def search_between(detector: FaceDetector, gray: np.ndarray, weak_xywha: np.ndarray,
                   settings: DetectorSettings | None = None, roll: RollSearch | None = None) -> np.ndarray:
    """Candidates (N, 5) found around the copies' weak boxes `weak_xywha` (search_copies): each in-between copy
    around the weak boxes within `roll.between_reach_deg` of its angle, and each copy again around its own, all at
    `roll.second_look_scale_factor` when set (search_around)."""
    s = settings or detector.settings
    roll = roll or RollSearch()
    weak = np.asarray(weak_xywha, dtype=np.float64).reshape(-1, 5)
    finer = roll if roll.second_look_scale_factor is None else replace(roll, scale_factor=roll.second_look_scale_factor)
    found = [np.zeros((0, 5))]
    for angle in roll.between_angles_deg:
        near = weak[np.abs(weak[:, 4] - angle) <= roll.between_reach_deg]
        if len(near):
            found.append(search_around(detector, gray, angle, near, s, finer))
    if roll.second_look_scale_factor is not None:
        for angle in roll.angles_deg:
            own = weak[weak[:, 4] == angle]
            if len(own):
                found.append(search_around(detector, gray, angle, own, s, finer))
    return _inside(np.vstack(found), gray, roll)


def outside_share(boxes_xywha: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(N,) the share of each turned box's area that lies outside an image of `shape` (height, width, ...)."""
    boxes = np.asarray(boxes_xywha, dtype=np.float64).reshape(-1, 5)
    h, w = shape[:2]
    image = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    inside = np.array([cv2.intersectConvexConvex(corners, image)[0] for corners in turned_corners(boxes)], np.float64)
    area = boxes[:, 2] * boxes[:, 3]
    return 1.0 - np.divide(inside.reshape(-1), area, out=np.zeros_like(area), where=area > 0)  # no area: all outside


def _inside(boxes_xywha: np.ndarray, gray: np.ndarray, roll: RollSearch) -> np.ndarray:
    """The turned boxes that keep within the image as far as `roll.max_outside_share` allows."""
    return boxes_xywha[outside_share(boxes_xywha, gray.shape) <= roll.max_outside_share]


def centres_inside(boxes_xywha: np.ndarray, within_xywha: np.ndarray) -> np.ndarray:
    """(N,) whether each turned box's centre lies inside (or on the edge of) any of the turned boxes `within_xywha`."""
    boxes = np.asarray(boxes_xywha, dtype=np.float64).reshape(-1, 5)
    centres = boxes[:, :2] + boxes[:, 2:4] / 2  # as turned_corners places a box
    polygons = turned_corners(within_xywha)
    return np.array([any(cv2.pointPolygonTest(p, (float(x), float(y)), False) >= 0 for p in polygons)
                     for x, y in centres], dtype=bool)


#: The Haar cascade's window (haarcascade_frontalface_default.xml): no face smaller than this is found.
CASCADE_WINDOW_PX = 24


def search_around(detector: FaceDetector, gray: np.ndarray, angle_deg: float, hints_xywha: np.ndarray,
                  settings: DetectorSettings, roll: RollSearch) -> np.ndarray:
    """Turned boxes (N, 5) the cascade finds on the copy turned by `angle_deg` (turned_copy) in the windows around
    `hints_xywha` (turned boxes of `gray`): each window a fraction of a whole copy's cost."""
    hints = np.asarray(hints_xywha, dtype=np.float64).reshape(-1, 5)
    if len(hints) == 0:
        return np.zeros((0, 5))
    copy, matrix, inner = turned_copy(gray, angle_deg, settings, roll)
    scale = float(np.hypot(*matrix[0, :2]))
    centres = (hints[:, :2] + hints[:, 2:4] / 2 - 0.5) @ matrix[:, :2].T + matrix[:, 2] + 0.5
    sides = hints[:, 2] * scale
    reach = roll.between_window_sides * sides[:, None]
    floor = _users_smallest_face(gray, settings, scale)  # without the copies' own floor
    found = [np.zeros((0, 5))]
    for x0, y0, x1, y1, side in merged_windows(np.hstack([centres - reach, centres + reach, sides[:, None]])):
        x0, y0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
        x1, y1 = min(copy.shape[1], int(np.ceil(x1))), min(copy.shape[0], int(np.ceil(y1)))
        if min(x1 - x0, y1 - y0) < CASCADE_WINDOW_PX:
            continue
        window = copy[y0:y1, x0:x1]
        smallest = max(roll.between_smallest * side, floor)
        boxes = detector.detect(window, replace(inner, min_size_fraction=smallest / min(window.shape),
                                                max_side=max(window.shape)))
        found.append(boxes_from_copy(np.asarray(boxes, dtype=np.float64).reshape(-1, 4) + (x0, y0, 0, 0),
                                     matrix, angle_deg))
    return np.vstack(found)


def merged_windows(windows: np.ndarray) -> list[np.ndarray]:
    """Rectangles (x0, y0, x1, y1, side) with every overlapping pair merged into their bounding rectangle (keeping the
    smaller side), so that no pixel is searched twice."""
    out: list[np.ndarray] = []
    for w in np.asarray(windows, dtype=np.float64).reshape(-1, 5):
        apart = []
        for o in out:
            if w[0] < o[2] and o[0] < w[2] and w[1] < o[3] and o[1] < w[3]:
                w = np.r_[np.minimum(w[:2], o[:2]), np.maximum(w[2:4], o[2:4]), min(w[4], o[4])]
            else:
                apart.append(o)
        out = [*apart, w]
    # a window that grew may now overlap one it was checked against before: once more until nothing merges
    return out if len(out) == len(windows) else merged_windows(np.array(out))


def turned_copy(gray: np.ndarray, angle_deg: float, settings: DetectorSettings,
                roll: RollSearch) -> tuple[np.ndarray, np.ndarray, DetectorSettings]:
    """The copy of `gray` in which a face rolled by `angle_deg` stands upright (scaled as `roll` says), the 2x3
    matrix from `gray`'s pixels to the copy's, and the cascade settings for it; one place for the search and for
    the verifier's mining (trainer.verifier), so both see the same copies (the mining leaves the in-between
    windows out)."""
    h, w = gray.shape
    scale = min(settings.max_side, roll.copy_side) / max(h, w)
    copy, matrix = turn_image(gray, -angle_deg, scale)
    fraction = max(_users_smallest_face(gray, settings, scale), roll.copy_smallest_face) / min(copy.shape)
    k = max(1, settings.min_neighbors - roll.sensitivity_boost)
    return copy, matrix, DetectorSettings(roll.scale_factor, k, fraction, max(copy.shape))


def _users_smallest_face(gray: np.ndarray, settings: DetectorSettings, scale: float) -> float:
    """The settings' smallest face in a copy scaled by `scale`, in its pixels: a fraction of the image's shorter
    side, not of the turned copy's larger canvas, so a turned copy looks for the same faces as the upright pass."""
    return settings.min_size_fraction * min(gray.shape) * scale


def boxes_from_copy(boxes_xywh: np.ndarray, matrix: np.ndarray, angle_deg: float) -> np.ndarray:
    """Upright boxes found on a turned copy (turned_copy's `matrix`) as (N, 5) turned boxes in the image's pixels."""
    boxes = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
    back = cv2.invertAffineTransform(matrix)
    centres = (boxes[:, :2] + boxes[:, 2:] / 2 - 0.5) @ back[:, :2].T + back[:, 2] + 0.5
    sides = boxes[:, 2:] * float(np.hypot(*back[:, 0]))  # the copy's pixels -> the image's (1 / its scale)
    return _with_angle(np.hstack([centres - sides / 2, sides]), angle_deg)


def _with_angle(boxes: np.ndarray, angle: float) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.hstack([boxes, np.full((len(boxes), 1), float(angle))])


#: Boxes found on copies turned by different angles overlapping more than this (IoU of the turned boxes) are
#: one face: a face's turned copy also fires on its chin, neck or collar beside the face's own box.
CROSS_ANGLE_IOU = 0.01


def one_turned_box_per_face(boxes_xywha: np.ndarray, scores: np.ndarray, nms_iou: float = NMS_IOU,
                            cross_angle_iou: float = CROSS_ANGLE_IOU,
                            contained_fraction: float = CONTAINED_FRACTION) -> np.ndarray:
    """Indices of the turned boxes (x, y, w, h, angle_deg) to keep, best score first: one box per face across
    angles. Greedy by score: a box is dropped when it overlaps a kept one by more than `nms_iou` (same angle)
    or `cross_angle_iou` (another angle), or when `contained_fraction` of its area lies inside a larger kept box."""
    boxes = np.asarray(boxes_xywha, dtype=np.float64).reshape(-1, 5)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    corners = turned_corners(boxes)
    areas = boxes[:, 2] * boxes[:, 3]
    out: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        drop = False
        for j in out:
            inter = float(cv2.intersectConvexConvex(corners[i], corners[j])[0])
            iou = inter / (areas[i] + areas[j] - inter + 1e-9)
            limit = nms_iou if boxes[i, 4] == boxes[j, 4] else cross_angle_iou
            if iou > limit or (areas[j] > areas[i] and inter >= contained_fraction * areas[i]):
                drop = True
                break
        if not drop:
            out.append(int(i))
    return np.asarray(out, dtype=int)


def turned_corners(boxes_xywha: np.ndarray) -> list[np.ndarray]:
    """The four corners (float32, 4 x 2) of each turned box (x, y, w, h, angle_deg), for cv2's polygon overlaps."""
    boxes = np.asarray(boxes_xywha, dtype=np.float64).reshape(-1, 5)
    rects = [((x + w / 2, y + h / 2), (w, h), -a) for x, y, w, h, a in boxes]  # cv2 turns clockwise as shown
    return [cv2.boxPoints(r).astype(np.float32) for r in rects]


def turned_box_iou(a_xywha: np.ndarray, b_xywha: np.ndarray) -> float:
    """Intersection over union of two turned boxes (x, y, w, h, angle_deg), each turned about its own centre."""
    ca, cb = turned_corners(np.vstack([a_xywha, b_xywha]))
    inter = float(cv2.intersectConvexConvex(ca, cb)[0])
    return inter / (float(a_xywha[2] * a_xywha[3] + b_xywha[2] * b_xywha[3]) - inter + 1e-9)


class DetectorProcess:
    """`FaceDetector.detect` in a child process of its own, at a lower CPU priority.

    Why a process: Haar detection spreads over OpenCV's worker threads, which a niced *thread* cannot
    take down with it, so on 2 cores every detection slowed the frames drawn meanwhile (the webcam's
    p95). A process niced as a whole yields both cores to the frame path. The child is a fresh
    interpreter that imports only this module; requests and answers travel as multiprocessing.connection
    messages over two pipes. Not thread-safe by itself: one caller at a time (core.live's detection thread).

    Why not a spawn-context ProcessPoolExecutor, as trainer.importer uses for its batch of frames: a
    spawned child re-imports the parent's `__main__`, which in the app is Streamlit's runner (the
    whole server stack, in a process meant to hold only OpenCV), and a pool hands each call through a
    feeder thread and a queue, where this path sends one frame at a time and waits for its answer.
    The importer runs under `python -m trainer`, whose `__main__` is guarded and cheap, on batches.
    """

    def __init__(self, niceness: int = 10):
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        code = (f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r}); "
                f"from core.detector import serve_detections; serve_detections({to_child_r}, {from_child_w}, {niceness})")
        try:
            self._process = subprocess.Popen([sys.executable, "-c", code], pass_fds=(to_child_r, from_child_w),
                                             stdin=subprocess.DEVNULL)
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self._send, self._receive = Connection(to_child_w, readable=False), Connection(from_child_r, writable=False)

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def detect(self, gray: np.ndarray, settings: DetectorSettings | None = None,
               roll: RollSearch | None = None) -> np.ndarray:
        """What FaceDetector().detect(gray, settings) returns, or with `roll` what detect_any_roll returns (turned
        candidates, N x 5); DetectorProcessError when the child is gone."""
        try:
            self._send.send((np.ascontiguousarray(gray), settings, roll))
            answer = self._receive.recv()
        except (EOFError, OSError) as exc:
            raise DetectorProcessError("the face detection process ended") from exc
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the child (idempotent)."""
        with contextlib.suppress(OSError):
            self._send.close()  # the child sees the end of its input and returns
        with contextlib.suppress(OSError):
            self._receive.close()
        try:
            self._process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout_s)


class DetectorProcessError(RuntimeError):
    """The detection child process died (killed, out of memory); the caller can detect in-process instead."""


def serve_detections(request_fd: int, answer_fd: int, niceness: int) -> None:
    """DetectorProcess's child: (gray, settings, roll) in, boxes or the exception out, until its input ends."""
    if hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(niceness)  # before OpenCV starts its worker threads, which inherit it
    requests, answers = Connection(request_fd, writable=False), Connection(answer_fd, readable=False)
    detector = FaceDetector()
    while True:
        try:
            gray, settings, roll = requests.recv()
        except (EOFError, OSError):
            return
        answer: np.ndarray | Exception
        try:
            if roll is None:
                answer = detector.detect(gray, settings)
            else:
                answer = detect_any_roll(detector, gray, settings, roll)
        except Exception as exc:  # handed to the caller, like an in-process call would raise it
            answer = exc
        try:
            answers.send(answer)
        except OSError:
            return
