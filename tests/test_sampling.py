import numpy as np
import pytest

from core.model import denormalise_keypoints
from core.schema import KEYPOINT_NAMES
from tests.helpers import synthetic_faces
from trainer.augment import NO_AUGMENTATION
from trainer.recipe import augmented_batches
from trainer.sampling import head_turn, pose_balanced_probabilities

NOSE = KEYPOINT_NAMES.index("nose_tip")


def turned(keypoints: np.ndarray, amount: float) -> np.ndarray:
    """The same faces with the nose tip moved sideways by `amount` eye distances."""
    k = keypoints.copy()
    eyes = k[:, KEYPOINT_NAMES.index("left_eye_center")] - k[:, KEYPOINT_NAMES.index("right_eye_center")]
    k[:, NOSE, 0] = (k[:, 0, 0] + k[:, 1, 0]) / 2 + amount * np.linalg.norm(eyes, axis=1)
    return k


def test_head_turn_is_the_nose_offset_in_eye_distances_and_nan_when_unmeasurable():
    k = synthetic_faces(3).keypoints
    assert head_turn(turned(k, 0.0)) == pytest.approx([0, 0, 0], abs=1e-5)
    assert head_turn(turned(k, 0.65)) == pytest.approx([0.65] * 3, abs=1e-5)
    assert head_turn(turned(k, -0.3)) == pytest.approx([0.3] * 3, abs=1e-5)  # either way
    k[1, NOSE] = np.nan
    assert np.isnan(head_turn(k)[1])


def test_balance_gives_rare_turns_their_share():
    frontal = turned(synthetic_faces(90).keypoints, 0.02)
    profile = turned(synthetic_faces(10).keypoints, 0.7)
    keypoints = np.concatenate([frontal, profile])
    assert pose_balanced_probabilities(keypoints, 0.0) is None  # the recipe: every row once
    p_full = pose_balanced_probabilities(keypoints, 1.0)
    assert p_full.sum() == pytest.approx(1.0)
    assert p_full[90:].sum() == pytest.approx(0.5)  # two bins, equal shares
    p_half = pose_balanced_probabilities(keypoints, 0.5)
    assert 0.1 < p_half[90:].sum() < 0.5  # sqrt(10) / (sqrt(90) + sqrt(10)) = 0.25
    with_missing = keypoints.copy()
    with_missing[0, NOSE] = np.nan
    assert np.isfinite(pose_balanced_probabilities(with_missing, 1.0)).all()


def test_batches_follow_the_probabilities():
    data = synthetic_faces(20, seed=3)
    probabilities = np.zeros(20)
    probabilities[7] = 1.0
    batches = augmented_batches(data, 8, NO_AUGMENTATION, seed=0, probabilities=probabilities)
    _, targets = batches[0]
    np.testing.assert_allclose(denormalise_keypoints(targets), np.repeat(data.keypoints[7:8], 8, 0), atol=1e-4)
    uniform = augmented_batches(data, 20, NO_AUGMENTATION, seed=0)
    _, all_targets = uniform[0]
    assert len(np.unique(all_targets[:, 0].round(4))) == 20  # without probabilities: every row once
