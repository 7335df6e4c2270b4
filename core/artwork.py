"""The overlay artwork, drawn by the project's own code (no image files to license or ship).

Each piece is an RGBA image plus named anchor points in its own pixels; overlays map the
anchors onto face keypoints with one similarity transform.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache

import cv2
import numpy as np


@dataclass(frozen=True)
class Artwork:
    rgba: np.ndarray  # (H, W, 4) uint8, BGRA channel order like every image in core
    anchors: Mapping[str, tuple[float, float]] = field(default_factory=dict)


def _smooth_alpha(rgba: np.ndarray) -> np.ndarray:
    """Anti-alias the edges drawn with hard-edged cv2 primitives."""
    rgba[..., 3] = cv2.GaussianBlur(rgba[..., 3], (5, 5), 1.2)
    return rgba


@cache
def sunglasses() -> Artwork:
    """Two dark, slightly see-through lenses with a glint, a bridge and frame arms; 400x150."""
    w, h = 400, 150
    art = np.zeros((h, w, 4), np.uint8)
    lens_centres = ((112, 75), (288, 75))
    for cx, cy in lens_centres:
        cv2.ellipse(art, (cx, cy), (86, 64), 0, 0, 360, (30, 30, 30, 255), -1, cv2.LINE_AA)  # frame
        cv2.ellipse(art, (cx, cy), (78, 56), 0, 0, 360, (60, 40, 25, 230), -1, cv2.LINE_AA)  # lens
        cv2.ellipse(art, (cx - 30, cy - 25), (22, 8), -25, 0, 360, (200, 200, 200, 140), -1, cv2.LINE_AA)
    cv2.line(art, (190, 55), (210, 55), (30, 30, 30, 255), 10, cv2.LINE_AA)  # bridge
    cv2.line(art, (28, 52), (2, 40), (30, 30, 30, 255), 8, cv2.LINE_AA)  # arms
    cv2.line(art, (372, 52), (398, 40), (30, 30, 30, 255), 8, cv2.LINE_AA)
    # image-left lens sits on the subject's right eye
    anchors = {"right_eye_center": lens_centres[0], "left_eye_center": lens_centres[1]}
    return Artwork(_smooth_alpha(art), anchors)


@cache
def moustache() -> Artwork:
    """A brown moustache: two lobes thick at the middle, tapering to curled ends. 300x110."""
    w, h = 300, 110
    art = np.zeros((h, w, 4), np.uint8)
    colour = (25, 50, 85, 245)
    for side in (-1, 1):
        cv2.ellipse(art, (150 + side * 55, 48), (62, 24), side * 12, 0, 360, colour, -1, cv2.LINE_AA)
        cv2.ellipse(art, (150 + side * 112, 40), (26, 14), -side * 35, 0, 360, colour, -1, cv2.LINE_AA)
        cv2.circle(art, (150 + side * 132, 24), 9, colour, -1, cv2.LINE_AA)
    cv2.ellipse(art, (150, 40), (40, 20), 0, 0, 360, colour, -1, cv2.LINE_AA)
    anchors = {"mouth_right_corner": (75, 58), "mouth_left_corner": (225, 58)}
    return Artwork(_smooth_alpha(art), anchors)


@cache
def hat() -> Artwork:
    """A straw-coloured hat with a band; its brim line is anchored above the eyebrows. 400x260."""
    w, h = 400, 260
    art = np.zeros((h, w, 4), np.uint8)
    straw, band = (90, 190, 225, 255), (40, 40, 160, 255)
    cv2.ellipse(art, (200, 95), (110, 90), 0, 180, 360, straw, -1, cv2.LINE_AA)  # crown
    cv2.rectangle(art, (90, 95), (310, 185), straw, -1, cv2.LINE_AA)
    cv2.rectangle(art, (90, 150), (310, 180), band, -1, cv2.LINE_AA)
    cv2.ellipse(art, (200, 195), (198, 40), 0, 0, 360, straw, -1, cv2.LINE_AA)  # brim
    cv2.ellipse(art, (200, 195), (198, 40), 0, 0, 360, (60, 150, 190, 255), 3, cv2.LINE_AA)
    anchors = {"right_eyebrow_outer_end": (115, 195), "left_eyebrow_outer_end": (285, 195)}  # on the brim
    return Artwork(_smooth_alpha(art), anchors)

