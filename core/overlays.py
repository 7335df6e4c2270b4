"""Things drawn on a face from its keypoints: numbered points, artwork, blur and pixelation.

All functions draw in place on a BGR uint8 image and return it, so effects can be chained.
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from core import artwork as art
from core.schema import INDEX, KEYPOINT_NAMES

EFFECTS: tuple[str, ...] = ("keypoints", "labelled keypoints", "sunglasses", "moustache", "hat", "blur", "pixelate")


#: The label drawn beside each keypoint is its number; pages show this legend (number -> name).
KEYPOINT_LEGEND: tuple[str, ...] = tuple(f"{i + 1} {name.replace('_', ' ')}" for i, name in enumerate(KEYPOINT_NAMES))
LABEL_FONT = cv2.FONT_HERSHEY_SIMPLEX
#: Where a number may go, as multiples of (its width, its height) from the dot: right, left, above, below, corners.
_LABEL_SPOTS = ((1, 0), (-1, 0), (0, -1), (0, 1), (1, -1), (-1, -1), (1, 1), (-1, 1))


def _dot_radius(keypoints_px: np.ndarray) -> int:
    finite = keypoints_px[np.isfinite(keypoints_px).all(axis=1)]
    span = float(np.ptp(finite[:, 0])) if len(finite) else 0.0
    return max(1, int(round(span / 40)))


def label_boxes(keypoints_px: np.ndarray, image_size_wh: tuple[int, int]) -> dict[int, tuple[int, int, int, int]]:
    """Where each keypoint's number goes (x0, y0, x1, y1), by keypoint index.

    A number sits beside its dot, clear of every dot and of the numbers placed before it, inside
    the image; a number with no such place is left out (the dot stays). Text grows with the face,
    so it stays legible on small faces and large ones alike.
    """
    keypoints_px = np.asarray(keypoints_px, dtype=np.float64)
    radius = _dot_radius(keypoints_px)
    scale, thickness = _label_font(keypoints_px)
    width, height = image_size_wh
    finite = [i for i in range(len(keypoints_px)) if np.isfinite(keypoints_px[i]).all()]
    taken = [(x - radius - 1, y - radius - 1, x + radius + 1, y + radius + 1) for x, y in keypoints_px[finite]]
    placed: dict[int, tuple[int, int, int, int]] = {}
    for i in finite:
        (tw, th), base = cv2.getTextSize(str(i + 1), LABEL_FONT, scale, thickness)
        tw, th = tw + 2, th + base + 2  # the dark outline around the digits
        x, y = keypoints_px[i]
        for sx, sy in _LABEL_SPOTS:
            cx = x + sx * (radius + 2 + tw / 2)
            cy = y + sy * (radius + 2 + th / 2)
            box = (int(round(cx - tw / 2)), int(round(cy - th / 2)), int(round(cx + tw / 2)), int(round(cy + th / 2)))
            inside = box[0] >= 0 and box[1] >= 0 and box[2] <= width and box[3] <= height
            if inside and not any(_overlap(box, other) for other in taken):
                placed[i] = box
                taken.append(box)
                break
    return placed


def _overlap(a: tuple, b: tuple) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _label_font(keypoints_px: np.ndarray) -> tuple[float, int]:
    """Font scale and stroke from the face's size: about a fifth of the eye distance tall, at least 9 px."""
    finite = keypoints_px[np.isfinite(keypoints_px).all(axis=1)]
    span = float(np.ptp(finite[:, 0])) if len(finite) else 0.0
    scale = float(np.clip(span / 300, 0.3, 1.2))
    return scale, 1 if scale < 0.8 else 2


def draw_keypoints(
    image: np.ndarray, keypoints_px: np.ndarray, labels: bool = False, colour: tuple[int, int, int] = (0, 255, 0)
) -> np.ndarray:
    """Dots (radius scaled to the face) and, optionally, their numbers (KEYPOINT_LEGEND) where they fit
    (label_boxes). NaN points are skipped."""
    keypoints_px = np.asarray(keypoints_px, dtype=np.float64)
    radius = _dot_radius(keypoints_px)
    for x, y in keypoints_px:
        if not np.isfinite([x, y]).all():
            continue
        centre = (int(round(x)), int(round(y)))
        cv2.circle(image, centre, radius + 1, (0, 0, 0), -1, cv2.LINE_AA)
        cv2.circle(image, centre, radius, colour, -1, cv2.LINE_AA)
    if labels:
        scale, thickness = _label_font(keypoints_px)
        for i, (x0, _, _, y1) in label_boxes(keypoints_px, (image.shape[1], image.shape[0])).items():
            (tw, th), base = cv2.getTextSize(str(i + 1), LABEL_FONT, scale, thickness)
            origin = (x0 + 1, y1 - 1 - base)
            cv2.putText(image, str(i + 1), origin, LABEL_FONT, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
            cv2.putText(image, str(i + 1), origin, LABEL_FONT, scale, colour, thickness, cv2.LINE_AA)
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
    scale = float(np.linalg.norm(d_vec)) / max(float(np.linalg.norm(s_vec)), 1e-9)
    angle = np.arctan2(d_vec[1], d_vec[0]) - np.arctan2(s_vec[1], s_vec[0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    shift = dst[0] - rot @ src[0]
    matrix = np.hstack([rot, shift[:, None]])
    # Warp only into the artwork's footprint, not the whole frame: its bounding box, or for a turned piece
    # (whose box is mostly empty corners) a few horizontal bands, each as wide as the footprint is there.
    h, w = piece.rgba.shape[:2]
    quad = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64) @ rot.T + shift
    y0, y1 = max(int(np.floor(quad[:, 1].min())), 0), min(int(np.ceil(quad[:, 1].max())), image.shape[0])
    turned = abs(np.sin(angle)) > 0.1
    bands = max(1, min(4, (y1 - y0) // 24)) if turned else 1
    edges = np.linspace(y0, y1, bands + 1).round().astype(int)
    for top, bottom in zip(edges[:-1], edges[1:], strict=True):
        left, right = _x_span(quad, top, bottom)
        left, right = max(left, 0), min(right, image.shape[1])
        if right <= left or bottom <= top:
            continue
        band = matrix.copy()
        band[:, 2] -= (left, top)
        warped = cv2.warpAffine(piece.rgba, band, (right - left, bottom - top), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
        # one OpenCV pass, not numpy's float temporaries
        alpha = warped[..., 3].astype(np.float32) * np.float32(1 / 255)
        roi = image[top:bottom, left:right]
        roi[:] = cv2.blendLinear(np.ascontiguousarray(warped[..., :3]), np.ascontiguousarray(roi), alpha, 1.0 - alpha)
    return image


def _x_span(quad: np.ndarray, top: float, bottom: float) -> tuple[int, int]:
    """Pixel columns [left, right) that the convex polygon `quad` covers between rows `top` and `bottom`
    (one pixel of margin for the warp's interpolation)."""
    xs = [x for x, y in quad if top <= y <= bottom]
    for (xa, ya), (xb, yb) in zip(quad, np.roll(quad, -1, axis=0), strict=True):
        for row in (top, bottom):
            if ya != yb and min(ya, yb) <= row <= max(ya, yb):
                xs.append(xa + (row - ya) * (xb - xa) / (yb - ya))
    if not xs:
        return 0, 0
    return int(np.floor(min(xs))) - 1, int(np.ceil(max(xs))) + 2


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


Ellipse = tuple[tuple[float, float], tuple[float, float]]


def face_ellipse(box_xywh: Sequence[float] | np.ndarray, angle_deg: float = 0.0) -> Ellipse:
    """The face itself inside a detector box, as (centre, semi-axes): the box's width, a little taller
    (Haar boxes stop at the brows and the chin; the forehead and cheeks are part of who someone is).
    A box turned by `angle_deg` (counter-clockwise as shown) turns its ellipse with it: the semi-axes are
    along the face's own axes."""
    x, y, w, h = (float(v) for v in box_xywh)
    if angle_deg == 0:
        return (x + w / 2, y + h * 0.52), (w * 0.56, h * 0.68)
    a = np.deg2rad(angle_deg)
    down = h * 0.02  # the centre's offset below the box centre, along the face's down (sin a, cos a)
    return (x + w / 2 + down * np.sin(a), y + h / 2 + down * np.cos(a)), (w * 0.56, h * 0.68)


def hide_faces(image: np.ndarray, boxes_xywh: Sequence[Sequence[float] | np.ndarray], chosen: Sequence[int],
               method: str = "blur", angles_deg: Sequence[float] | None = None) -> np.ndarray:
    """Blur or pixelate each chosen face inside its feathered ellipse (face_ellipse), turned with the face
    when its box is (`angles_deg`, one per box, counter-clockwise as shown).

    The feather lies outside the ellipse, so the face itself is fully hidden; every other face's
    ellipse is left untouched, so hiding one face never cuts into its neighbour.
    """
    if method not in ("blur", "pixelate"):
        raise ValueError(f"unknown privacy method {method!r}; choose blur or pixelate")
    angles = [0.0] * len(boxes_xywh) if angles_deg is None else [float(a) for a in angles_deg]
    ellipses = [face_ellipse(b, a) for b, a in zip(boxes_xywh, angles, strict=True)]
    height, width = image.shape[:2]
    for i in chosen:
        (cx, cy), (ax, ay) = ellipses[i]
        feather = 0.12 * max(ax, ay)
        rx, ry = (ax, ay) if angles[i] == 0 else (max(ax, ay), max(ax, ay))  # a turned ellipse's reach
        x0, y0 = max(int(cx - rx - 3 * feather), 0), max(int(cy - ry - 3 * feather), 0)
        x1, y1 = min(int(cx + rx + 3 * feather) + 1, width), min(int(cy + ry + 3 * feather) + 1, height)
        if x1 <= x0 or y1 <= y0:
            continue
        roi = image[y0:y1, x0:x1]
        size = (roi.shape[1], roi.shape[0])
        # The mask and the blur are smooth, so both are made on a copy shrunk to a few pixels per
        # feather width and scaled back: a face-sized Gaussian at full size costs far more than a frame.
        step = max(1, int(feather / 4))
        small_size = (max(1, size[0] // step), max(1, size[1] // step))
        fx, fy = small_size[0] / size[0], small_size[1] / size[1]
        mask_small = np.zeros(small_size[::-1], np.float32)
        _fill_ellipse(mask_small, (((cx - x0) * fx, (cy - y0) * fy),
                                   ((ax + 1.5 * feather) * fx, (ay + 1.5 * feather) * fy)), 1.0, angles[i])
        mask = cv2.resize(cv2.GaussianBlur(mask_small, (0, 0), feather / 2 / step), size,
                          interpolation=cv2.INTER_LINEAR)
        for j, other in enumerate(ellipses):  # at full size: the neighbour's outline stays exact
            if j != i:
                (ox, oy), axes = other
                _fill_ellipse(mask, ((ox - x0, oy - y0), axes), 0.0, angles[j])
        if method == "blur":
            sigma = max(ax, ay) / 3
            shrink = max(1, int(sigma / 2.5))  # the blur leaves nothing finer than a few pixels at this size
            hidden = cv2.resize(cv2.GaussianBlur(_shrink(roi, shrink), (0, 0), sigma / shrink), size,
                                interpolation=cv2.INTER_LINEAR)
        else:
            cell = max(2, int(round(2 * max(ax, ay) / 10)))  # about 10 cells across the face
            hidden = cv2.resize(_shrink(roi, cell), size, interpolation=cv2.INTER_NEAREST)
        inner = _inner_rect(ellipses[i], angles[i], (x0, y0), size)
        if inner is None or any(_overlaps(other, inner, (x0, y0)) for j, other in enumerate(ellipses) if j != i):
            cv2.blendLinear(hidden, roi, mask, 1.0 - mask, dst=roi)  # in place: roi is a view of the image
            continue
        # The mask is 1 inside the face's own ellipse (the feather lies outside it): copy the hidden pixels
        # into a rectangle within it and blend only the frame around that rectangle, in place.
        left, top, right, bottom = inner
        roi[top:bottom, left:right] = hidden[top:bottom, left:right]
        for rows, cols in ((slice(0, top), slice(None)), (slice(bottom, None), slice(None)),
                           (slice(top, bottom), slice(0, left)), (slice(top, bottom), slice(right, None))):
            part = roi[rows, cols]
            if part.size:
                weight = mask[rows, cols]
                cv2.blendLinear(hidden[rows, cols], part, weight, 1.0 - weight, dst=part)
    return image


def _inner_rect(ellipse: Ellipse, angle_deg: float, origin: tuple[int, int], size: tuple[int, int]
                ) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) in the region at `origin`: an upright rectangle inside the ellipse (a turned
    one: inside its inscribed circle), a pixel in from its outline; None when empty."""
    (cx, cy), (ax, ay) = ellipse
    hx, hy = (ax, ay) if angle_deg == 0 else (min(ax, ay), min(ax, ay))
    hx, hy = hx / np.sqrt(2) - 1, hy / np.sqrt(2) - 1
    left, top = max(int(np.ceil(cx - hx)) - origin[0], 0), max(int(np.ceil(cy - hy)) - origin[1], 0)
    right, bottom = min(int(cx + hx) - origin[0], size[0]), min(int(cy + hy) - origin[1], size[1])
    return (left, top, right, bottom) if right > left and bottom > top else None


def _overlaps(ellipse: Ellipse, rect: tuple[int, int, int, int], origin: tuple[int, int]) -> bool:
    """Whether an ellipse's reach (its longer semi-axis every way, turned or not) meets the rectangle."""
    (cx, cy), (ax, ay) = ellipse
    reach = max(ax, ay)
    left, top, right, bottom = rect
    return (cx - reach < right + origin[0] and cx + reach > left + origin[0]
            and cy - reach < bottom + origin[1] and cy + reach > top + origin[1])


def face_closeup(image: np.ndarray, box_xywh: Sequence[float], keypoints_px: np.ndarray,
                 width: int = 360) -> np.ndarray:
    """The face's box (and a quarter more around it) scaled to `width` px with its numbered keypoints
    drawn at that size: numbers drawn on a whole photo are specks once the photo is shown shrunk."""
    x, y, w, h = (float(v) for v in box_xywh)
    margin = 0.25 * max(w, h)
    x0, y0 = max(int(x - margin), 0), max(int(y - margin), 0)
    x1, y1 = min(int(x + w + margin) + 1, image.shape[1]), min(int(y + h + margin) + 1, image.shape[0])
    factor = width / max(x1 - x0, 1)
    crop = cv2.resize(image[y0:y1, x0:x1], (width, max(1, int(round((y1 - y0) * factor)))),
                      interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
    points = (np.asarray(keypoints_px, np.float64) - (x0, y0)) * factor
    return draw_keypoints(crop, points, labels=True)


def _tag_scale(image: np.ndarray) -> tuple[float, int]:
    """Font scale and stroke for tags on a whole picture: about 1/30 of its long side tall, so a tag
    stays readable when a large photo is shown a few hundred pixels wide."""
    scale = max(0.6, max(image.shape[:2]) / 700)
    return scale, max(1, int(round(scale * 1.6)))


def draw_tag(image: np.ndarray, text: str, anchor_xy: tuple[float, float],
             colour: tuple[int, int, int] = (255, 255, 255),
             background: tuple[int, int, int] = (40, 40, 40)) -> np.ndarray:
    """`text` on a filled box whose bottom-left corner is at `anchor_xy` (moved inside the image): a face
    number or a verifier score that reads on light and dark photos alike."""
    scale, thickness = _tag_scale(image)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    pad = max(2, thickness * 2)
    x = int(np.clip(anchor_xy[0], 0, max(0, image.shape[1] - tw - 2 * pad)))
    y = int(np.clip(anchor_xy[1], th + base + 2 * pad, image.shape[0]))
    cv2.rectangle(image, (x, y - th - base - 2 * pad), (x + tw + 2 * pad, y), background, -1)
    cv2.putText(image, text, (x + pad, y - base - pad), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)
    return image


def draw_face_number(image: np.ndarray, box_xywh: Sequence[float], number: int,
                     score: float | None = None) -> np.ndarray:
    """The number a page picks a face by (and the face verifier's score, when given) above its box."""
    x, y = float(box_xywh[0]), float(box_xywh[1])
    return draw_tag(image, f"{number}" if score is None else f"{number}: {score:.2f}", (x, y - 2),
                    background=(150, 90, 0))


def draw_rejected_box(image: np.ndarray, box_xywh: Sequence[float], score: float | None = None,
                      colour: tuple[int, int, int] = (230, 230, 230), angle_deg: float = 0.0,
                      note: str = "") -> np.ndarray:
    """A dashed light-grey box (dark-edged, so it shows on light and dark parts) with the face verifier's
    score and `note` (why it was refused, when not for its score) on a dark tag: a detection that was not
    accepted, turned about its centre by `angle_deg` (counter-clockwise as shown) like the face it was found
    as. Line width and text follow the image size, not the box's, so small rejected boxes stay visible when a
    large photo is shown shrunk."""
    x, y, w, h = (int(round(v)) for v in box_xywh)
    thickness = max(2, int(round(max(image.shape[:2]) / 400)))
    dash = max(4, int(round(max(w, h) / 10)))
    corners = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    if angle_deg != 0:
        turned = cv2.boxPoints(((x + w / 2, y + h / 2), (w, h), -angle_deg))  # cv2 turns clockwise
        # boxPoints starts at the bottom-left corner of the upright box: start at the face's top-left
        corners = [(int(round(px)), int(round(py))) for px, py in np.roll(turned, -1, axis=0)]
        x, y = min(c[0] for c in corners), min(c[1] for c in corners)
    for (x0, y0), (x1, y1) in zip(corners, corners[1:] + corners[:1]):
        length = max(abs(x1 - x0), abs(y1 - y0), 1)
        for start in range(0, length, 2 * dash):
            end = min(start + dash, length)
            p0 = (x0 + (x1 - x0) * start // length, y0 + (y1 - y0) * start // length)
            p1 = (x0 + (x1 - x0) * end // length, y0 + (y1 - y0) * end // length)
            cv2.line(image, p0, p1, (30, 30, 30), thickness + 2, cv2.LINE_AA)
            cv2.line(image, p0, p1, colour, thickness, cv2.LINE_AA)
    tag = " ".join(t for t in ("" if score is None else f"{score:.2f}", note) if t)
    if tag:
        draw_tag(image, tag, (x, y - thickness - 1), colour=colour)
    return image


def _shrink(image: np.ndarray, step: int) -> np.ndarray:
    """Each `step` x `step` block averaged into one pixel; the last partial row and column of blocks are
    left out, since OpenCV averages whole blocks several times faster than a fractional scale."""
    rows, cols = max(1, image.shape[0] // step), max(1, image.shape[1] // step)
    whole = image[:rows * step, :cols * step]
    return cv2.resize(whole, (cols, rows), interpolation=cv2.INTER_AREA)


def _fill_ellipse(mask: np.ndarray, ellipse: tuple[tuple[float, float], tuple[float, float]], value: float = 1.0,
                  angle_deg: float = 0.0) -> None:
    (cx, cy), (ax, ay) = ellipse
    shift = 4  # sub-pixel precision for cv2.ellipse
    centre = (int(round(cx * 2 ** shift)), int(round(cy * 2 ** shift)))
    axes = (max(1, int(round(ax * 2 ** shift))), max(1, int(round(ay * 2 ** shift))))
    cv2.ellipse(mask, centre, axes, -angle_deg, 0, 360, value, -1, cv2.LINE_AA, shift)  # cv2 turns clockwise
