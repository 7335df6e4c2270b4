import numpy as np

from core import schema


def test_names_and_columns_follow_kaggle_order():
    assert len(schema.KEYPOINT_NAMES) == 15
    assert schema.COORD_COLUMNS[:4] == ("left_eye_center_x", "left_eye_center_y", "right_eye_center_x", "right_eye_center_y")
    assert schema.COORD_COLUMNS[-1] == "mouth_center_bottom_lip_y"


def test_flip_pairs_swap_left_and_right_only():
    pairs = dict(schema.FLIP_PAIRS)
    assert len(pairs) == 6
    assert pairs["left_eye_center"] == "right_eye_center"
    assert pairs["left_eyebrow_outer_end"] == "right_eyebrow_outer_end"
    assert pairs["mouth_left_corner"] == "mouth_right_corner"
    perm = schema.FLIP_PERMUTATION
    assert (perm[perm] == np.arange(15)).all()  # an involution
    for centre in ("nose_tip", "mouth_center_top_lip", "mouth_center_bottom_lip"):
        assert perm[schema.INDEX[centre]] == schema.INDEX[centre]


def test_flip_twice_is_identity_and_left_eye_stays_on_image_right():
    rng = np.random.default_rng(0)
    k = rng.uniform(0, 95, (15, 2))
    np.testing.assert_allclose(schema.flip_keypoints(schema.flip_keypoints(k, 96), 96), k)
    face = np.zeros((15, 2))
    face[schema.INDEX["left_eye_center"]] = (60, 40)  # subject's left = image right
    face[schema.INDEX["right_eye_center"]] = (30, 40)
    flipped = schema.flip_keypoints(face, 96)
    assert flipped[schema.INDEX["left_eye_center"]][0] > flipped[schema.INDEX["right_eye_center"]][0]
    np.testing.assert_allclose(flipped[schema.INDEX["left_eye_center"]], (95 - 30, 40))


def test_ibug68_mapping():
    pts = np.stack([np.arange(68), np.arange(68) * 10], axis=1).astype(float)
    k = schema.ibug68_to_kaggle15(pts)
    assert k.shape == (15, 2)
    np.testing.assert_allclose(k[schema.INDEX["left_eye_center"]], (np.mean(range(42, 48)), 10 * np.mean(range(42, 48))))
    np.testing.assert_allclose(k[schema.INDEX["right_eye_outer_corner"]], (36, 360))
    np.testing.assert_allclose(k[schema.INDEX["nose_tip"]], (30, 300))
    np.testing.assert_allclose(k[schema.INDEX["mouth_left_corner"]], (54, 540))
    np.testing.assert_allclose(schema.interocular_distance(k), np.hypot(9, 90))
