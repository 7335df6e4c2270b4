"""Things drawn on a face from its keypoints: labelled points, artwork, blur and pixelation.

All functions draw in place on a BGR uint8 image and return it, so effects can be chained.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from core import artwork as art
from core.schema import INDEX, KEYPOINT_NAMES

EFFECTS: tuple[str, ...] = ("keypoints", "labelled keypoints", "sunglasses", "moustache", "hat", "blur", "pixelate")


def draw_keypoints(
    image: np.ndarray, keypoints_px: np.ndarray, labels: bool = False, colour: tuple[int, int, int] = (0, 255, 0)
) -> np.ndarray:
    """Dots (radius scaled to the face) and, optionally, the Kaggle names beside them. NaN points are skipped."""
    keypoints_px = np.asarray(keypoints_px, dtype=np.float64)
    finite = keypoints_px[np.isfinite(keypoints_px).all(axis=1)]
    span = float(np.ptp(finite[:, 0])) if len(finite) else 0.0
    radius = max(1, int(round(span / 40)))
    font_scale = max(0.3, span / 400)
    for name, (x, y) in zip(KEYPOINT_NAMES, keypoints_px):
        if not np.isfinite([x, y]).all():
            continue
        centre = (int(round(x)), int(round(y)))
        cv2.circle(image, centre, radius + 1, (0, 0, 0), -1, cv2.LINE_AA)
        cv2.circle(image, centre, radius, colour, -1, cv2.LINE_AA)
        if labels:
            cv2.putText(image, name, (centre[0] + radius + 2, centre[1]), cv2.FONT_HERSHEY_SIMPLEX,
                        font_scale, colour, 1, cv2.LINE_AA)
    return image


def paste_artwork(image: np.ndarray, piece: art.Artwork, targets_px: dict[str, np.ndarray]) -> np.ndarray:
    """Alpha-blend `piece` so its anchors land on `targets_px` (a similarity: scale, rotation, shift)."""
    names = list(piece.anchors)
    src = np.array([piece.anchors[n] for n in names], np.float64)
    dst = np.array([targets_px[n] for n in names], np.float64)
    if not np.isfinite(dst).all():
        return image
    # Exact similarity from the two anchor pairs (rotation + uniform scale + shift).
    s_vec, d_vec = src[1] - src[0], dst[1] - dst[0]
    scale = np.linalg.norm(d_vec) / max(np.linalg.norm(s_vec), 1e-9)
    angle = np.arctan2(d_vec[1], d_vec[0]) - np.arctan2(s_vec[1], s_vec[0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    shift = dst[0] - rot @ src[0]
    matrix = np.hstack([rot, shift[:, None]])
    # Warp only into the bounding box of the artwork's footprint, not the whole frame.
    h, w = piece.rgba.shape[:2]
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float64) @ rot.T + shift
    x0, y0 = np.floor(corners.min(0)).astype(int)
    x1, y1 = np.ceil(corners.max(0)).astype(int)
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, image.shape[1]), min(y1, image.shape[0])
    if x1 <= x0 or y1 <= y0:
        return image
    matrix[:, 2] -= (x0, y0)
    warped = cv2.warpAffine(piece.rgba, matrix, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    alpha = warped[..., 3:4].astype(np.float32) / 255.0
    roi = image[y0:y1, x0:x1]
    roi[:] = (warped[..., :3] * alpha + roi * (1.0 - alpha)).astype(np.uint8)
    return image


def _targets(keypoints_px: np.ndarray) -> dict[str, np.ndarray]:
    return {name: keypoints_px[INDEX[name]] for name in KEYPOINT_NAMES}


def add_sunglasses(image: np.ndarray, keypoints_px: np.ndarray) -> np.ndarray:
    return paste_artwork(image, art.sunglasses(), _targets(keypoints_px))


def add_moustache(image: np.ndarray, keypoints_px: np.ndarray) -> np.ndarray:
    """Between nose tip and upper lip: the artwork's ends go to the mouth corners lifted 60% of the way to the nose."""
    t = _targets(keypoints_px)
    nose, lip = t["nose_tip"], t["mouth_center_top_lip"]
    lift = 0.6 * (nose - lip)
    t["mouth_left_corner"] = t["mouth_left_corner"] + lift
    t["mouth_right_corner"] = t["mouth_right_corner"] + lift
    return paste_artwork(image, art.moustache(), t)


def add_hat(image: np.ndarray, keypoints_px: np.ndarray) -> np.ndarray:
    """Brim above the brows (0.45 brow half-spans up), as wide as about 2.3 brow spans."""
    t = _targets(keypoints_px)
    left, right = t["left_eyebrow_outer_end"], t["right_eyebrow_outer_end"]
    centre, half = (left + right) / 2, (left - right) / 2
    up = np.array([half[1], -half[0]])  # perpendicular to the brow line, towards the top of the head
    t["left_eyebrow_outer_end"] = centre + 1.0 * half + 0.45 * up
    t["right_eyebrow_outer_end"] = centre - 1.0 * half + 0.45 * up
    return paste_artwork(image, art.hat(), t)


def _clip_box(image: np.ndarray, box_xywh: Sequence[float]) -> tuple[int, int, int, int]:
    x, y, w, h = (int(round(v)) for v in box_xywh)
    x0, y0 = max(x, 0), max(y, 0)
    return x0, y0, min(x + w, image.shape[1]), min(y + h, image.shape[0])


def blur_region(image: np.ndarray, box_xywh: Sequence[float]) -> np.ndarray:
    """Gaussian blur strong enough (sigma = box/6) that the face cannot be recognised."""
    x0, y0, x1, y1 = _clip_box(image, box_xywh)
    if x1 > x0 and y1 > y0:
        sigma = max(x1 - x0, y1 - y0) / 6
        image[y0:y1, x0:x1] = cv2.GaussianBlur(image[y0:y1, x0:x1], (0, 0), sigma)
    return image


def pixelate_region(image: np.ndarray, box_xywh: Sequence[float], blocks: int = 10) -> np.ndarray:
    """Mosaic of `blocks` x `blocks` cells over the box."""
    x0, y0, x1, y1 = _clip_box(image, box_xywh)
    if x1 > x0 and y1 > y0:
        roi = image[y0:y1, x0:x1]
        small = cv2.resize(roi, (blocks, blocks), interpolation=cv2.INTER_AREA)
        image[y0:y1, x0:x1] = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
    return image


def draw_rejected_box(image: np.ndarray, box_xywh: Sequence[float], score: float | None = None,
                      colour: tuple[int, int, int] = (200, 200, 200)) -> np.ndarray:
    """A dashed grey box (dark-edged, so it shows on light and dark parts) with the face verifier's score:
    a detection the verifier did not accept. Line width and text follow the image size, not the box's,
    so small rejected boxes stay visible when a large photo is shown shrunk."""
    x, y, w, h = (int(round(v)) for v in box_xywh)
    thickness = max(1, int(round(max(image.shape[:2]) / 500)))
    dash = max(4, int(round(max(w, h) / 10)))
    corners = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    for (x0, y0), (x1, y1) in zip(corners, corners[1:] + corners[:1]):
        length = max(abs(x1 - x0), abs(y1 - y0), 1)
        for start in range(0, length, 2 * dash):
            end = min(start + dash, length)
            p0 = (x0 + (x1 - x0) * start // length, y0 + (y1 - y0) * start // length)
            p1 = (x0 + (x1 - x0) * end // length, y0 + (y1 - y0) * end // length)
            cv2.line(image, p0, p1, (40, 40, 40), thickness + 2, cv2.LINE_AA)
            cv2.line(image, p0, p1, colour, thickness, cv2.LINE_AA)
    if score is not None:
        font_scale = max(0.4, max(image.shape[:2]) / 1500)
        origin = (x + 2, max(y - 2 * thickness - 2, int(14 * font_scale) + 2))
        cv2.putText(image, f"{score:.2f}", origin, cv2.FONT_HERSHEY_SIMPLEX, font_scale, (40, 40, 40), thickness + 2,
                    cv2.LINE_AA)
        cv2.putText(image, f"{score:.2f}", origin, cv2.FONT_HERSHEY_SIMPLEX, font_scale, colour, thickness, cv2.LINE_AA)
    return image
