"""Crop geometry: the one place that turns a face box into the model's 96x96 input.

Training (trainer.importer) and inference (core.pipeline) both call `crop_from_box`, so the
model sees at inference exactly the framing it was trained on. A crop is a similarity
transform (scale + rotation + translation) from image pixels to crop pixels; keypoints go through
the same matrix both ways, and cv2.warpAffine samples the image with it. The rotation lets the
model always read an upright face whatever the head's roll in the image.

Convention: integer coordinates are pixel centres (as in cv2 and the Kaggle/iBUG labels). Angles are
degrees, counter-clockwise positive as the image is shown (y down): a face turned so that its eye
line rises to the right on screen has a positive angle. A rotated square or box
turns about its own centre, so (left, top, side) keep meaning "the square before it turned".
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
    """A square region of the image (left, top, side in image pixels, turned by `angle_deg` about its
    centre) mapped onto an upright size x size crop."""

    left: float
    top: float
    side: float
    size: int = CROP_SIZE
    #: The face's roll in the image (counter-clockwise positive as shown); the crop undoes it.
    angle_deg: float = 0.0

    @property
    def scale(self) -> float:
        """Crop pixels per image pixel."""
        return self.size / self.side

    @property
    def centre(self) -> np.ndarray:
        """The square's centre in image pixel coordinates."""
        return np.array([self.left + self.side / 2 - 0.5, self.top + self.side / 2 - 0.5])

    def _rotation(self) -> np.ndarray:
        """2x2 rotation taking image directions to crop directions (undoes the face's roll)."""
        a = np.deg2rad(self.angle_deg)
        c, s = np.cos(a), np.sin(a)
        return np.array([[c, -s], [s, c]])

    def matrix(self) -> np.ndarray:
        """2x3 affine matrix from image pixel coordinates to crop pixel coordinates."""
        s = self.scale
        if self.angle_deg == 0:
            return np.array(
                [[s, 0.0, s * (0.5 - self.left) - 0.5], [0.0, s, s * (0.5 - self.top) - 0.5]], dtype=np.float64
            )
        linear = s * self._rotation()
        offset = (self.size - 1) / 2 - linear @ self.centre
        return np.hstack([linear, offset[:, None]])

    def to_crop(self, points_px: np.ndarray) -> np.ndarray:
        """Image-pixel points (..., 2) -> crop-pixel points."""
        points_px = np.asarray(points_px, dtype=np.float64)
        if self.angle_deg == 0:
            return (points_px + 0.5 - (self.left, self.top)) * self.scale - 0.5
        return (points_px - self.centre) @ self._rotation().T * self.scale + (self.size - 1) / 2

    def to_image(self, points_crop: np.ndarray) -> np.ndarray:
        """Crop-pixel points (..., 2) -> image-pixel points."""
        points_crop = np.asarray(points_crop, dtype=np.float64)
        if self.angle_deg == 0:
            return (points_crop + 0.5) / self.scale + (self.left, self.top) - 0.5
        return (points_crop - (self.size - 1) / 2) @ self._rotation() / self.scale + self.centre

    def corners(self) -> np.ndarray:
        """The square's four corners in image pixels (4, 2): top-left, top-right, bottom-right, bottom-left
        as the face sees them (for drawing a turned box)."""
        edge = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]) * self.size - 0.5
        return self.to_image(edge)

    def bounds(self) -> tuple[float, float, float, float]:
        """The upright bounding box (x0, y0, x1, y1, pixel-edge coordinates) of the turned square."""
        if self.angle_deg == 0:
            return self.left, self.top, self.left + self.side, self.top + self.side
        a = np.deg2rad(self.angle_deg)
        half = self.side / 2 * (abs(np.cos(a)) + abs(np.sin(a)))
        cx, cy = self.left + self.side / 2, self.top + self.side / 2
        return cx - half, cy - half, cx + half, cy + half

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
            bx0, by0, bx1, by1 = self.bounds()
            x0, y0 = max(int(np.floor(bx0)) - pad, 0), max(int(np.floor(by0)) - pad, 0)
            x1 = min(int(np.ceil(bx1)) + pad, gray.shape[1])
            y1 = min(int(np.ceil(by1)) + pad, gray.shape[0])
            need = int(np.ceil(1 / factor))  # a region shrunk to nothing cannot be resized
            if x1 - x0 < need:  # (mostly) outside the image: the nearest strip of edge pixels
                x0 = max(min(x0, gray.shape[1] - need), 0)
                x1 = min(x0 + need, gray.shape[1])
            if y1 - y0 < need:
                y0 = max(min(y0, gray.shape[0] - need), 0)
                y1 = min(y0 + need, gray.shape[0])
            small = cv2.resize(gray[y0:y1, x0:x1], None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
            rescaled = CropTransform((self.left - x0) * factor, (self.top - y0) * factor, self.side * factor,
                                     self.size, self.angle_deg)
            return rescaled.extract(small)
        return cv2.warpAffine(
            gray, self.matrix(), (self.size, self.size), flags=interpolation, borderMode=cv2.BORDER_REPLICATE
        )


def crop_from_box(
    box_xywh: np.ndarray | tuple[float, float, float, float],
    margin: float = CROP_MARGIN,
    shift_down: float = CROP_SHIFT_DOWN,
    size: int = CROP_SIZE,
    angle_deg: float = 0.0,
) -> CropTransform:
    """The crop for a detector box: squared on its longer side, grown by `margin`, nudged down.

    A turned box (a detection on a rotated copy of the image) is (x, y, w, h) before turning about its
    centre by `angle_deg`; "down" is then the face's own down.
    """
    x, y, w, h = (float(v) for v in box_xywh)
    if w <= 0 or h <= 0:
        raise ValueError(f"box must have a positive size, got {box_xywh}")
    side = max(w, h) * margin
    cx = x + w / 2
    cy = y + h / 2 + shift_down * max(w, h)
    if angle_deg == 0:
        return CropTransform(cx - side / 2, cy - side / 2, side, size)
    a = np.deg2rad(angle_deg)
    down = shift_down * max(w, h)  # along the face's down: (sin a, cos a) in the image
    cx, cy = x + w / 2 + down * np.sin(a), y + h / 2 + down * np.cos(a)
    return CropTransform(float(cx - side / 2), float(cy - side / 2), side, size, float(angle_deg))


def crop_around_points(points_px: np.ndarray, reference_crop: np.ndarray, size: int = CROP_SIZE,
                       rotate: bool = True) -> CropTransform:
    """The crop that puts `points_px` where `reference_crop` (the mean training shape, crop px) sits.

    Least-squares similarity fit (scale as the ratio of the two shapes' spreads, rotation by Umeyama's
    closed form, translation onto the centroids), so a tilted face comes out upright in the crop; used
    to re-centre a second pass on a first prediction and to follow a face between webcam frames.
    `rotate=False` fits scale + translation only (an upright crop).
    """
    points_px = np.asarray(points_px, dtype=np.float64).reshape(-1, 2)
    reference_crop = np.asarray(reference_crop, dtype=np.float64).reshape(-1, 2)
    p_mean, r_mean = points_px.mean(0), reference_crop.mean(0)
    p_c, r_c = points_px - p_mean, reference_crop - r_mean
    scale = float(np.sqrt((r_c**2).sum() / max((p_c**2).sum(), 1e-9)))  # crop px per image px
    side = size / scale
    if not rotate:
        # (p_mean + 0.5 - left) * scale - 0.5 == r_mean
        left, top = p_mean + 0.5 - (r_mean + 0.5) / scale
        return CropTransform(float(left), float(top), side, size)
    # the rotation R (crop = scale * R @ image) that best turns the centred points onto the reference
    cross = float((p_c[:, 0] * r_c[:, 1] - p_c[:, 1] * r_c[:, 0]).sum())
    dot = float((p_c * r_c).sum())
    angle = float(np.degrees(np.arctan2(cross, dot)))
    crop = CropTransform(0.0, 0.0, side, size, angle)
    # choose the centre so that p_mean lands on r_mean: centre = p_mean - R^T (r_mean - (size-1)/2) / scale
    centre = p_mean - (r_mean - (size - 1) / 2) @ crop._rotation() / scale
    return CropTransform(float(centre[0] + 0.5 - side / 2), float(centre[1] + 0.5 - side / 2), side, size, angle)


def turn_image(image: np.ndarray, angle_deg: float, scale: float = 1.0,
               border: int = cv2.BORDER_REPLICATE) -> tuple[np.ndarray, np.ndarray]:
    """`image` scaled by `scale` and turned counter-clockwise (as shown) by `angle_deg` on a canvas enlarged to
    hold all of it (a face in it gains `angle_deg` of roll), and the 2x3 matrix from `image` pixels to the
    new pixels (points move with `points @ m[:, :2].T + m[:, 2]`). `border` fills the enlarged corners."""
    h, w = image.shape[:2]
    a = np.deg2rad(angle_deg)
    c, s = abs(np.cos(a)), abs(np.sin(a))
    out_w, out_h = int(np.ceil((w * c + h * s) * scale)), int(np.ceil((w * s + h * c) * scale))
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle_deg, scale)
    matrix[:, 2] += ((out_w - 1) / 2 - (w - 1) / 2, (out_h - 1) / 2 - (h - 1) / 2)
    interpolation = cv2.INTER_AREA if scale < 1 and angle_deg == 0 else cv2.INTER_LINEAR
    return cv2.warpAffine(image, matrix, (out_w, out_h), flags=interpolation, borderMode=border), matrix


def offset_from_reference(crop: CropTransform, points_px: np.ndarray, reference_crop: np.ndarray) -> np.ndarray:
    """How far (crop px, x and y) the centroid of `points_px` sits from the reference shape's centroid in `crop`."""
    points_crop = crop.to_crop(np.asarray(points_px, dtype=np.float64).reshape(-1, 2))
    return points_crop.mean(0) - np.asarray(reference_crop, dtype=np.float64).reshape(-1, 2).mean(0)


def shift_onto_points(crop: CropTransform, points_px: np.ndarray, reference_crop: np.ndarray) -> CropTransform:
    """The same-sized crop moved so the centroid of `points_px` lands on the reference shape's centroid."""
    offset = offset_from_reference(crop, points_px, reference_crop)
    if crop.angle_deg == 0:
        dx, dy = offset / crop.scale
    else:  # a crop-px offset is along the turned crop's axes
        dx, dy = offset @ crop._rotation() / crop.scale
    return CropTransform(crop.left + dx, crop.top + dy, crop.side, crop.size, crop.angle_deg)


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
