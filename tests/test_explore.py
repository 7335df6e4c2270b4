"""The dataset page's numbers and pictures, computed without Streamlit on data whose answers are known."""
import numpy as np
import pytest

from core.schema import INDEX, KEYPOINT_NAMES
from pages.ui import pictures
from trainer import explore
from trainer.data import KeypointData
from trainer.synthetic import FRONTAL_SHAPE_CROP, synthetic_faces


@pytest.fixture
def data() -> KeypointData:
    """6 faces of 3 people; row 1 lacks the nose tip, row 4 lacks the nose tip and both mouth corners."""
    d = synthetic_faces(6, people=3)
    d.keypoints[1, INDEX["nose_tip"]] = np.nan
    d.keypoints[4, [INDEX["nose_tip"], INDEX["mouth_left_corner"], INDEX["mouth_right_corner"]]] = np.nan
    return d


def test_summary_and_completeness_count_rows_and_labels(data):
    assert explore.summary(data) == {"rows": 6, "complete": 4, "incomplete": 2, "people": 3}
    table = explore.completeness(data)
    assert list(table["keypoint"]) == list(KEYPOINT_NAMES)
    counts = dict(zip(table["keypoint"], table["labelled_rows"]))
    assert counts["nose_tip"] == 4 and counts["mouth_left_corner"] == 5 and counts["left_eye_center"] == 6
    assert table["fraction"].max() == 1.0
    assert explore.summary(KeypointData(data.images, data.keypoints))["people"] is None


def test_missing_patterns_group_rows_missing_the_same_points(data):
    table = explore.missing_patterns(data)
    rows = dict(zip(table["missing keypoints"], table["rows"]))
    assert rows["none (complete)"] == 4 and rows["nose_tip"] == 1
    three = next(p for p in rows if p.count(",") == 2)
    assert set(three.split(", ")) == {"nose_tip", "mouth_left_corner", "mouth_right_corner"}
    assert table.set_index("missing keypoints").loc[three, "missing count"] == 3


def test_filter_rows(data):
    assert explore.filter_rows(data, "all").tolist() == list(range(6))
    assert explore.filter_rows(data, "complete").tolist() == [0, 2, 3, 5]
    assert explore.filter_rows(data, "incomplete").tolist() == [1, 4]
    assert explore.filter_rows(data, "missing mouth_left_corner").tolist() == [4]
    with pytest.raises(ValueError, match="unknown filter"):
        explore.filter_rows(data, "missing chin")


def test_positions_and_mean_shape_skip_missing_points(data):
    positions = explore.keypoint_positions(data)
    assert len(positions) == 6 * 15 - 4 and positions[["x", "y"]].notna().all().all()
    assert len(explore.keypoint_positions(data, max_points=10)) == 10
    mean = explore.mean_shape(data).set_index("keypoint")
    expected = np.nanmean(data.keypoints[:, INDEX["nose_tip"]], axis=0)
    assert mean.loc["nose_tip", ["x", "y"]].tolist() == pytest.approx(expected.tolist())
    assert np.abs(mean[["x", "y"]].to_numpy() - FRONTAL_SHAPE_CROP).max() < 6  # synthetic faces sit near the frontal shape


def test_head_turns_measure_turned_faces_and_skip_unmeasurable_ones(data):
    turned = data.keypoints.copy()
    turned[0, INDEX["nose_tip"], 0] += 20  # nose far off the eyes' midpoint
    turns = explore.head_turns(KeypointData(data.images, turned))
    assert len(turns) == 4  # rows without a nose tip cannot be measured
    assert turns["head turn"].iloc[0] > 0.5 > turns["head turn"].iloc[1:].max()


def test_face_picture_draws_only_labelled_points(data):
    plain = pictures.face_picture(data.images[0], np.full((15, 2), np.nan), scale=2)
    drawn = pictures.face_picture(data.images[0], data.keypoints[0], scale=2)
    assert plain.shape == drawn.shape == (192, 192, 3)
    assert (plain != drawn).any(axis=2).sum() > 15 * 4  # every point leaves a mark


def test_held_out_pictures_draw_truth_green_and_prediction_red(tmp_path):
    data = synthetic_faces(3)
    np.savez(tmp_path / "test_faces.npz", images=data.images, truth=data.keypoints, predicted=data.keypoints + 5)
    drawn = pictures.held_out_pictures(tmp_path / "test_faces.npz")
    assert len(drawn) == 3 and drawn[0].shape == (192, 192, 3)
    b, g, r = (drawn[0][..., c].astype(int) for c in range(3))
    assert ((g > 150) & (r < 100)).sum() > 30 and ((r > 150) & (g < 100)).sum() > 30  # both sets drawn
    assert pictures.held_out_pictures(tmp_path / "missing.npz") == []


def test_gallery_pages_and_augmented_samples(data):
    from trainer.augment import NO_AUGMENTATION, AugmentConfig, transform

    pages = pictures.gallery_pages(np.arange(5), 2)
    assert [p.tolist() for p in pages] == [[0, 1], [2, 3], [4]]
    assert len(pictures.gallery_pages(np.arange(0), 12)) == 1  # an empty filter still has a (blank) first page
    images, keypoints = explore.augmented_sample(data, NO_AUGMENTATION, seed=3, size=4)
    again = explore.augmented_sample(data, AugmentConfig(), seed=3, size=4)
    assert images.shape == (4, 96, 96) and np.array_equal(explore.augmented_sample(data, AugmentConfig(), 3, 4)[0], again[0])
    assert any(np.array_equal(images[0], d) for d in data.images)  # no augmentation: rows as they are
    mirrored, moved = transform(data.images[0], data.keypoints[0], mirror=True)
    assert np.array_equal(mirrored, data.images[0][:, ::-1])
    assert moved[INDEX["left_eye_center"], 0] == pytest.approx(95 - data.keypoints[0, INDEX["right_eye_center"], 0])
