"""The one keypoint schema: names, column order, flip pairs and the iBUG-68 mapping.

Everything that reads, writes, flips or draws keypoints takes the order from here, so a
left/right mix-up can only happen in one place (and is tested here).
"""
from __future__ import annotations

import numpy as np

#: The 15 Kaggle "Facial Keypoints Detection" points, in the column order of training.csv.
#: "left" is the subject's left, which appears on the image's right.
KEYPOINT_NAMES: tuple[str, ...] = (
    "left_eye_center",
    "right_eye_center",
    "left_eye_inner_corner",
    "left_eye_outer_corner",
    "right_eye_inner_corner",
    "right_eye_outer_corner",
    "left_eyebrow_inner_end",
    "left_eyebrow_outer_end",
    "right_eyebrow_inner_end",
    "right_eyebrow_outer_end",
    "nose_tip",
    "mouth_left_corner",
    "mouth_right_corner",
    "mouth_center_top_lip",
    "mouth_center_bottom_lip",
)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)
INDEX = {name: i for i, name in enumerate(KEYPOINT_NAMES)}

#: Kaggle CSV columns: x then y for every keypoint, then the pixel string.
COORD_COLUMNS: tuple[str, ...] = tuple(f"{n}_{axis}" for n in KEYPOINT_NAMES for axis in ("x", "y"))
IMAGE_COLUMN = "Image"

#: Side of the square grayscale crop the model sees (Kaggle's 96x96).
CROP_SIZE = 96
#: Half the crop side: the crop's centre, and the unit of the model's normalised coordinates.
CROP_HALF = CROP_SIZE / 2
#: One model input: a 96x96 single-channel crop.
CROP_SHAPE: tuple[int, int, int] = (CROP_SIZE, CROP_SIZE, 1)


def _flip_permutation() -> np.ndarray:
    """Index map that swaps every left_* keypoint with its right_* twin."""
    perm = np.arange(NUM_KEYPOINTS)
    for i, name in enumerate(KEYPOINT_NAMES):
        if "left" in name:
            twin = INDEX[name.replace("left", "right")]
            perm[i], perm[twin] = twin, i
    return perm


#: keypoints_after_flip = mirrored(keypoints)[FLIP_PERMUTATION]
FLIP_PERMUTATION: np.ndarray = _flip_permutation()
FLIP_PAIRS: tuple[tuple[str, str], ...] = tuple(
    (KEYPOINT_NAMES[i], KEYPOINT_NAMES[j]) for i, j in enumerate(FLIP_PERMUTATION) if i < j
)

#: iBUG 300-W 68-point indices (0-based) whose mean gives each Kaggle point.
IBUG68_TO_KAGGLE15: dict[str, tuple[int, ...]] = {
    "left_eye_center": (42, 43, 44, 45, 46, 47),
    "right_eye_center": (36, 37, 38, 39, 40, 41),
    "left_eye_inner_corner": (42,),
    "left_eye_outer_corner": (45,),
    "right_eye_inner_corner": (39,),
    "right_eye_outer_corner": (36,),
    "left_eyebrow_inner_end": (22,),
    "left_eyebrow_outer_end": (26,),
    "right_eyebrow_inner_end": (21,),
    "right_eyebrow_outer_end": (17,),
    "nose_tip": (30,),
    "mouth_left_corner": (54,),
    "mouth_right_corner": (48,),
    "mouth_center_top_lip": (51,),
    "mouth_center_bottom_lip": (57,),
}
def _ibug68_flip_permutation() -> np.ndarray:
    """iBUG 300-W mirror map: jaw 0-16 reversed, brows 17-21 <-> 26-22, nostrils 31-35 reversed, eyes 36-41 <-> 45-46,
    outer lips 48-54 and 55-59 reversed, inner lips 60-64 and 65-67 reversed; the nose bridge stays."""
    pairs = [*zip(range(0, 8), range(16, 8, -1)), *zip(range(17, 22), range(26, 21, -1)), (31, 35), (32, 34),
             (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46), (48, 54), (49, 53), (50, 52),
             (55, 59), (56, 58), (60, 64), (61, 63), (65, 67)]
    perm = np.arange(68)
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return perm


#: points68_after_flip = mirrored(points68)[IBUG68_FLIP_PERMUTATION]
IBUG68_FLIP_PERMUTATION: np.ndarray = _ibug68_flip_permutation()

#: The outer eye corners (iBUG 36 and 45) whose distance normalises NME.
INTEROCULAR_PAIR = (INDEX["left_eye_outer_corner"], INDEX["right_eye_outer_corner"])


def ibug68_to_kaggle15(points68: np.ndarray) -> np.ndarray:
    """Map (..., 68, 2) iBUG points to (..., 15, 2) Kaggle points."""
    points68 = np.asarray(points68, dtype=np.float64)
    if points68.shape[-2:] != (68, 2):
        raise ValueError(f"expected (..., 68, 2) points, got {points68.shape}")
    return np.stack(
        [points68[..., list(IBUG68_TO_KAGGLE15[n]), :].mean(axis=-2) for n in KEYPOINT_NAMES], axis=-2
    )


def flip_keypoints(keypoints: np.ndarray, width: float) -> np.ndarray:
    """Mirror (..., 15, 2) keypoints left to right (across the vertical centre line of an image `width` pixels
    wide) and swap left/right names. (..., 68, 2) iBUG points swap by IBUG68_FLIP_PERMUTATION, and
    (..., 83, 2) are 15 Kaggle points followed by their face's 68 iBUG points (the trainer's auxiliary target).

    Pixel centres: x maps to (width - 1) - x, which is what cv2.flip does to pixel indices.
    """
    flipped = np.array(keypoints, dtype=np.float64, copy=True)
    flipped[..., 0] = (width - 1) - flipped[..., 0]
    return flipped[..., _flip_permutation_for(flipped.shape[-2]), :]


def _flip_permutation_for(points: int) -> np.ndarray:
    """The left/right swap for 15 Kaggle points, 68 iBUG points, or both (15 then 68)."""
    if points == NUM_KEYPOINTS:
        return FLIP_PERMUTATION
    if points == 68:
        return IBUG68_FLIP_PERMUTATION
    if points == NUM_KEYPOINTS + 68:
        return np.concatenate([FLIP_PERMUTATION, IBUG68_FLIP_PERMUTATION + NUM_KEYPOINTS])
    raise ValueError(f"expected 15, 68 or 15 + 68 points to flip, got {points}")


def interocular_distance(keypoints: np.ndarray) -> np.ndarray:
    """Distance between the outer eye corners of (..., 15, 2) keypoints."""
    a, b = INTEROCULAR_PAIR
    return np.linalg.norm(keypoints[..., a, :] - keypoints[..., b, :], axis=-1)
