"""The 68 iBUG points as an auxiliary target: their mirror map, augmentation, the sidecar beside a Kaggle
file, the second head, and the shipped model without it."""
import json

import numpy as np
import pytest

from core.schema import (
    IBUG68_FLIP_PERMUTATION,
    NUM_KEYPOINTS,
    flip_keypoints,
    ibug68_to_kaggle15,
)
from tests.helpers import write_synthetic_csv
from trainer.augment import AugmentConfig, augment_one, flip
from trainer.config import RecipeConfig, config_for
from trainer.data import DatasetError, read_kaggle_csv
from trainer.points68 import attach, crop_points68, fit_similarity, sidecar_path, write_sidecar

RIGHT_EYE, LEFT_EYE = list(range(36, 42)), list(range(42, 48))  # the subject's right eye is on the image's left


def face68(rng: np.random.Generator) -> np.ndarray:
    """68 points shaped roughly like a frontal face in a 96 px crop: each region on its own side."""
    p = rng.uniform(40, 56, (68, 2))
    p[RIGHT_EYE, 0] = rng.uniform(28, 42, 6)
    p[LEFT_EYE, 0] = rng.uniform(54, 68, 6)
    p[RIGHT_EYE + LEFT_EYE, 1] = rng.uniform(34, 40, 12)
    p[:8, 0], p[9:17, 0] = rng.uniform(15, 40, 8), rng.uniform(56, 81, 8)  # jaw: image left, then image right
    return p


def test_the_ibug_mirror_map_swaps_sides_and_agrees_with_the_15_point_one():
    perm = IBUG68_FLIP_PERMUTATION
    assert (perm[perm] == np.arange(68)).all()  # flipping twice is the identity
    assert sorted(perm[LEFT_EYE]) == RIGHT_EYE and perm[36] == 45 and perm[39] == 42
    assert perm[8] == 8 and perm[0] == 16 and perm[48] == 54 and (perm[27:31] == np.arange(27, 31)).all()
    points = np.random.default_rng(0).uniform(0, 96, (20, 68, 2))
    # the 15 read from flipped 68 are the flipped 15: both maps swap the same sides
    np.testing.assert_allclose(ibug68_to_kaggle15(flip_keypoints(points, 96)),
                               flip_keypoints(ibug68_to_kaggle15(points), 96), atol=1e-9)


def test_a_flipped_face_has_its_left_eye_points_where_the_mirrored_right_eye_was():
    rng = np.random.default_rng(1)
    p68 = face68(rng)
    both = np.concatenate([ibug68_to_kaggle15(p68), p68]).astype(np.float32)
    image = np.zeros((96, 96), np.uint8)
    for x, y in p68[RIGHT_EYE]:
        image[int(round(y)), int(round(x))] = 255  # only the right eye is drawn, on the image's left
    out_image, out = flip(image, both)
    flipped68 = out[NUM_KEYPOINTS:]
    mirrored_right = p68[RIGHT_EYE].copy()
    mirrored_right[:, 0] = 95 - mirrored_right[:, 0]
    def by_position(points):
        return points[np.lexsort(points.T[::-1])]

    np.testing.assert_allclose(by_position(flipped68[LEFT_EYE]), by_position(mirrored_right), atol=1e-4)
    np.testing.assert_allclose(flipped68[45], mirrored_right[0], atol=1e-4)  # outer corner 36 -> 45
    assert (flipped68[LEFT_EYE, 0] > 48).all()  # the subject's left eye is on the image's right again
    # the pixels moved there too: the drawn eye is now under the left-eye points
    for x, y in flipped68[LEFT_EYE]:
        assert out_image[int(round(y)), int(round(x))] == 255
    np.testing.assert_allclose(out[:NUM_KEYPOINTS], ibug68_to_kaggle15(flipped68), atol=1e-4)


def test_augmentation_moves_the_68_points_with_the_15():
    rng = np.random.default_rng(2)
    config = AugmentConfig(flip_probability=0.5, max_rotation_deg=30, scale_range=(0.8, 1.2), max_shift_fraction=0.1)
    flips = 0
    for _ in range(40):
        p68 = face68(rng)
        k15 = ibug68_to_kaggle15(p68)
        image = rng.integers(0, 255, (96, 96), dtype=np.uint8)
        both = np.concatenate([k15, p68]).astype(np.float32)
        state = rng.bit_generator.state
        _, moved = augment_one(image, both, rng, config)
        rng.bit_generator.state = state
        _, alone = augment_one(image, k15.astype(np.float32), rng, config)  # the same draws on the 15 alone
        np.testing.assert_allclose(moved[:NUM_KEYPOINTS], alone, atol=1e-3)
        np.testing.assert_allclose(ibug68_to_kaggle15(moved[NUM_KEYPOINTS:]), moved[:NUM_KEYPOINTS], atol=1e-3)
        # the 68 moved by one rotation + scale + shift of the face as drawn, or of its mirror image (permuted)
        residuals = {}
        for mirrored, start in ((False, p68), (True, flip_keypoints(p68, 96))):
            design = np.column_stack([start, np.ones(68)])
            m, *_ = np.linalg.lstsq(design, moved[NUM_KEYPOINTS:], rcond=None)
            residuals[mirrored] = (np.abs(design @ m - moved[NUM_KEYPOINTS:]).max(), np.linalg.det(m[:2]))
        fits = [mirrored for mirrored, (miss, det) in residuals.items() if miss < 1e-3 and det > 0]
        assert len(fits) == 1
        flips += fits[0]
    assert 5 < flips < 35


def test_fit_similarity_recovers_a_crop_and_leaves_missing_points_out():
    rng = np.random.default_rng(3)
    source = rng.uniform(100, 400, (15, 2))
    angle, scale, shift = np.deg2rad(12), 0.37, np.array([-20.0, 31.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    target = source @ rotation.T + shift
    target[4:] = np.nan  # a Kaggle-shaped row: 4 points left
    m = fit_similarity(source, target)
    np.testing.assert_allclose(m[:, :2], rotation, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], shift, atol=1e-7)
    with pytest.raises(ValueError):
        fit_similarity(source, np.full_like(target, np.nan))


def _frames_with_labels(tmp_path, n=12):
    """A synthetic Kaggle file whose rows are crops (scale + shift) of made-up frames' 68 points."""
    rng = np.random.default_rng(4)
    path = write_synthetic_csv(tmp_path / "tiny.csv", n=n, people=4)
    data = read_kaggle_csv(path)
    frames, frame_points, crop_points = [], {}, []
    for i in range(n):
        p68 = face68(rng)
        crop_points.append(p68)
        scale, shift = rng.uniform(0.2, 0.5), rng.uniform(50, 300, 2)
        name = f"person{i % 4}_{i:02d}.jpg"
        frames.append(name)
        frame_points[name] = (p68 - shift) / scale  # frame px, where crop px = frame px * scale + shift
    data.frames = np.array(frames)
    data.keypoints = ibug68_to_kaggle15(np.stack(crop_points)).astype(np.float32)
    from trainer.data import write_kaggle_csv

    write_kaggle_csv(data, path)
    return path, frame_points, np.stack(crop_points)


def test_the_sidecar_carries_each_rows_68_points_and_old_files_still_read(tmp_path):
    path, frame_points, truth = _frames_with_labels(tmp_path)
    data = read_kaggle_csv(path)  # the Kaggle file reads as before, 15 points, no 68
    assert data.keypoints.shape[1:] == (15, 2) and data.points68 is None
    with pytest.raises(DatasetError, match="points-68"):
        attach(data, path)  # no sidecar: the error names the command that makes one
    derived = crop_points68(data, frame_points)
    np.testing.assert_allclose(derived, truth, atol=0.01)
    write_sidecar(path, data.source_frames[::-1], derived[::-1])  # matched by frame name, not by order
    with_68 = attach(data, path)
    np.testing.assert_allclose(with_68.points68, truth, atol=0.01)
    np.testing.assert_allclose(with_68.subset(np.array([2, 5])).points68, with_68.points68[[2, 5]])
    wrong = dict(frame_points)
    first = str(data.source_frames[0])
    wrong[first] = wrong[first][::-1]  # another face's labels: the 15 points are not a crop of them
    with pytest.raises(DatasetError, match="not a crop"):
        crop_points68(data, wrong)
    write_sidecar(path, data.source_frames[:-1], derived[:-1])
    with pytest.raises(DatasetError, match="no 68 points for 1 of 12"):
        attach(data, path)


def test_import_writes_the_sidecar_that_points_68_would_make(shared_data, tmp_path):
    from tests.helpers import small_68_zip
    from trainer.importer import import_68_dataset
    from trainer.points68 import make_sidecar

    zip_path, _ = small_68_zip(shared_data / "youtube-faces-68" / "training.zip", tmp_path / "small.zip", people=2)
    out = tmp_path / "out.csv"
    import_68_dataset(zip_path, out, workers=1)
    data = attach(read_kaggle_csv(out), out)
    np.testing.assert_allclose(ibug68_to_kaggle15(data.points68), data.keypoints, atol=0.01)
    imported = data.points68.copy()
    sidecar_path(out).unlink()
    make_sidecar(out, zip_path)
    np.testing.assert_allclose(attach(read_kaggle_csv(out), out).points68, imported, atol=0.01)


@pytest.mark.parametrize("head", ["softargmax", "gap"])
def test_the_68_point_head_is_there_only_when_asked_and_inference_copy_drops_it(head):
    from trainer.architecture import AUX68_OUTPUT, build_model, inference_copy

    widths = (4, 8, 8, 16, 16)
    plain = build_model(widths, head=head)
    aux = build_model(widths, head=head, aux68=True)
    assert len(plain.outputs) == 1 and plain.output_shape == (None, 30)
    assert [tuple(o.shape) for o in aux.outputs] == [(None, 30), (None, 136)]
    assert aux.get_layer(AUX68_OUTPUT) is not None
    shipped = inference_copy(aux)
    assert shipped.output_shape == (None, 30)
    assert not any(layer.name.startswith(AUX68_OUTPUT) for layer in shipped.layers)
    assert shipped.count_params() == plain.count_params()  # the same per-face cost as a model without it
    x = np.random.default_rng(5).uniform(0, 1, (3, 96, 96, 1)).astype(np.float32)
    np.testing.assert_allclose(shipped(x).numpy(), aux(x)[0].numpy(), atol=1e-5)


def test_the_flag_sets_the_weight_and_every_preset_stays_without_it():
    from trainer.cli import _parser, config_from_args
    from trainer.presets import PRESET_NAMES

    assert all(config_for(p).aux68 == 0 for p in PRESET_NAMES)
    assert config_for("full") == RecipeConfig()  # the recipe, exactly
    args = _parser().parse_args(["train", "--aux68", "0.5"])
    assert config_from_args(args).aux68 == 0.5
    assert config_from_args(_parser().parse_args(["train"])).aux68 == 0
    with pytest.raises(ValueError, match="68-point head"):
        RecipeConfig(aux68=-1)


def test_training_with_the_68_point_head_ships_a_15_point_model(tmp_path):
    from core.model import KeypointPredictor
    from trainer import events as ev
    from trainer.export import load_keras_model
    from trainer.recipe import train

    path, frame_points, _ = _frames_with_labels(tmp_path, n=24)
    data = read_kaggle_csv(path)
    write_sidecar(path, data.source_frames, crop_points68(data, frame_points))
    config = RecipeConfig(data=str(path), widths=(4, 8, 8, 16, 16), learning_rates=(1e-3,), batch_sizes=(8,),
                          epochs_per_stage=1, test_size=4, val_fraction=0.2, head="softargmax", loss="mse",
                          aux68=0.5)
    card = train(config, tmp_path / "run")
    model = load_keras_model(tmp_path / "run" / "model.keras")
    assert model.output_shape == (None, 30) and len(model.outputs) == 1
    assert KeypointPredictor(tmp_path / "run" / "model.keras").predict_crops(np.zeros((2, 96, 96), np.uint8)).shape \
        == (2, 15, 2)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["aux68"] == 0.5
    assert card.config["aux68"] == 0.5
    epoch = next(e for e in ev.read_events(tmp_path / "run" / "events.jsonl") if e["event"] == ev.EPOCH_END)
    # the progress RMSE is the 15 points' (keypoints_mse), below the root of both heads' summed MSE
    assert 0 < (epoch["rmse_px"] / 48) ** 2 < epoch["loss"] * 0.999


def test_read15_reads_the_15_points_from_the_68_and_keeps_that_head_when_shipped():
    from trainer.architecture import build_model, inference_copy

    widths = (4, 8, 8, 16, 16)
    model = build_model(widths, head="softargmax", aux68=True, read15=True)
    x = np.random.default_rng(6).uniform(0, 1, (3, 96, 96, 1)).astype(np.float32)
    k15, k68 = (o.numpy() for o in model(x))
    np.testing.assert_allclose(k15.reshape(3, 15, 2), ibug68_to_kaggle15(k68.reshape(3, 68, 2)), atol=1e-6)
    assert not any(layer.name == "heatmaps" for layer in model.layers)  # no 15-point head of its own
    shipped = inference_copy(model)
    assert shipped.output_shape == (None, 30)
    np.testing.assert_allclose(shipped(x).numpy(), k15, atol=1e-5)
    with pytest.raises(ValueError, match="68-point head"):
        build_model(widths, head="softargmax", read15=True)
    with pytest.raises(ValueError, match="--aux68"):
        RecipeConfig(aux68_read15=True)
    from trainer.cli import _parser, config_from_args

    config = config_from_args(_parser().parse_args(["train", "--aux68", "1", "--aux68-read15"]))
    assert config.aux68 == 1 and config.aux68_read15
