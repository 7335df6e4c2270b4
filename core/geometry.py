"""Crop geometry: the one place that turns a face box into the model's 96x96 input.

Training (trainer.importer) and inference (core.pipeline) both call `crop_from_box`, so the
model sees at inference exactly the framing it was trained on. A crop is a similarity
transform (scale + translation) from image pixels to crop pixels; keypoints go through the
same matrix both ways, and cv2.warpAffine samples the image with it.

Convention: integer coordinates are pixel centres (as in cv2 and the Kaggle/iBUG labels).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from core.schema import CROP_SIZE

#: The crop is the detector box grown by this factor (Haar boxes cut off the chin and brows).
CROP_MARGIN = 1.25
#: ... and moved down by this fraction of the box side (Haar boxes sit high on the face).
CROP_SHIFT_DOWN = 0.05


@dataclass(frozen=True)
class CropTransform:
    """A square region of the image (left, top, side in image pixels) mapped onto a size x size crop."""

    left: float
    top: float
    side: float
    size: int = CROP_SIZE

    @property
    def scale(self) -> float:
        """Crop pixels per image pixel."""
        return self.size / self.side

    def matrix(self) -> np.ndarray:
        """2x3 affine matrix from image pixel coordinates to crop pixel coordinates."""
        s = self.scale
        return np.array(
            [[s, 0.0, s * (0.5 - self.left) - 0.5], [0.0, s, s * (0.5 - self.top) - 0.5]], dtype=np.float64
        )

    def to_crop(self, points_px: np.ndarray) -> np.ndarray:
        """Image-pixel points (..., 2) -> crop-pixel points."""
        points_px = np.asarray(points_px, dtype=np.float64)
        return (points_px + 0.5 - (self.left, self.top)) * self.scale - 0.5

    def to_image(self, points_crop: np.ndarray) -> np.ndarray:
        """Crop-pixel points (..., 2) -> image-pixel points."""
        points_crop = np.asarray(points_crop, dtype=np.float64)
        return (points_crop + 0.5) / self.scale + (self.left, self.top) - 0.5

    def extract(self, gray: np.ndarray) -> np.ndarray:
        """Sample the size x size crop from a 2-D uint8 image.

        Parts of the square outside the image repeat the border pixels, so a face at the
        edge keeps the same geometry (no squashing) instead of being clipped.
        """
        interpolation = cv2.INTER_AREA if self.scale < 1 else cv2.INTER_LINEAR
        if self.scale < 0.5:
            # INTER_AREA is not honoured by warpAffine: shrink the crop's own region (not the whole
            # image, whose cost grows with the photo's pixels), then warp. Parts of the square outside
            # the image are clipped here and repeated by the warp's BORDER_REPLICATE, as below.
            factor = self.scale * 2
            pad = int(np.ceil(2 / factor))  # room for the warp's interpolation at the region's edges
            x0, y0 = max(int(np.floor(self.left)) - pad, 0), max(int(np.floor(self.top)) - pad, 0)
            x1 = min(int(np.ceil(self.left + self.side)) + pad, gray.shape[1])
            y1 = min(int(np.ceil(self.top + self.side)) + pad, gray.shape[0])
            need = int(np.ceil(1 / factor))  # a region shrunk to nothing cannot be resized
            if x1 - x0 < need:  # (mostly) outside the image: the nearest strip of edge pixels
                x0 = max(min(x0, gray.shape[1] - need), 0)
                x1 = min(x0 + need, gray.shape[1])
            if y1 - y0 < need:
                y0 = max(min(y0, gray.shape[0] - need), 0)
                y1 = min(y0 + need, gray.shape[0])
            small = cv2.resize(gray[y0:y1, x0:x1], None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
            rescaled = CropTransform((self.left - x0) * factor, (self.top - y0) * factor, self.side * factor, self.size)
            return rescaled.extract(small)
        return cv2.warpAffine(
            gray, self.matrix(), (self.size, self.size), flags=interpolation, borderMode=cv2.BORDER_REPLICATE
        )


def crop_from_box(
    box_xywh: np.ndarray | tuple[float, float, float, float],
    margin: float = CROP_MARGIN,
    shift_down: float = CROP_SHIFT_DOWN,
    size: int = CROP_SIZE,
) -> CropTransform:
    """The crop for a detector box: squared on its longer side, grown by `margin`, nudged down."""
    x, y, w, h = (float(v) for v in box_xywh)
    if w <= 0 or h <= 0:
        raise ValueError(f"box must have a positive size, got {box_xywh}")
    side = max(w, h) * margin
    cx = x + w / 2
    cy = y + h / 2 + shift_down * max(w, h)
    return CropTransform(cx - side / 2, cy - side / 2, side, size)


def crop_around_points(points_px: np.ndarray, reference_crop: np.ndarray, size: int = CROP_SIZE) -> CropTransform:
    """The crop that puts `points_px` where `reference_crop` (the mean training shape, crop px) sits.

    Least-squares scale + translation fit; used to re-centre a second pass on a first prediction.
    """
    points_px = np.asarray(points_px, dtype=np.float64).reshape(-1, 2)
    reference_crop = np.asarray(reference_crop, dtype=np.float64).reshape(-1, 2)
    p_mean, r_mean = points_px.mean(0), reference_crop.mean(0)
    p_c, r_c = points_px - p_mean, reference_crop - r_mean
    scale = float(np.sqrt((r_c**2).sum() / max((p_c**2).sum(), 1e-9)))  # crop px per image px
    side = size / scale
    # (p_mean + 0.5 - left) * scale - 0.5 == r_mean
    left, top = p_mean + 0.5 - (r_mean + 0.5) / scale
    return CropTransform(float(left), float(top), side, size)


def offset_from_reference(crop: CropTransform, points_px: np.ndarray, reference_crop: np.ndarray) -> np.ndarray:
    """How far (crop px, x and y) the centroid of `points_px` sits from the reference shape's centroid in `crop`."""
    points_crop = crop.to_crop(np.asarray(points_px, dtype=np.float64).reshape(-1, 2))
    return points_crop.mean(0) - np.asarray(reference_crop, dtype=np.float64).reshape(-1, 2).mean(0)


def shift_onto_points(crop: CropTransform, points_px: np.ndarray, reference_crop: np.ndarray) -> CropTransform:
    """The same-sized crop moved so the centroid of `points_px` lands on the reference shape's centroid."""
    dx, dy = offset_from_reference(crop, points_px, reference_crop) / crop.scale
    return CropTransform(crop.left + dx, crop.top + dy, crop.side, crop.size)


def moved_px(before: CropTransform, after: CropTransform) -> float:
    """How far the crop's centre moved, in crop pixels of `before`."""
    dx = (after.left + after.side / 2) - (before.left + before.side / 2)
    dy = (after.top + after.side / 2) - (before.top + before.side / 2)
    return float(np.hypot(dx, dy) * before.scale)


def box_intersection(a: np.ndarray | tuple, b: np.ndarray | tuple) -> float:
    """The area two (x, y, w, h) boxes share."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    return float(max(0.0, x1 - x0) * max(0.0, y1 - y0))


def box_iou(a: np.ndarray | tuple, b: np.ndarray | tuple) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    inter = box_intersection(a, b)
    return float(inter / (a[2] * a[3] + b[2] * b[3] - inter + 1e-9))
