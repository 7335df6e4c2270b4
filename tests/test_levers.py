"""The training levers beyond the recipe: heads, losses, bfloat16, and the pixel-only augmentations."""
import json
import math
import threading

import cv2
import numpy as np
import pytest

from core.model import KeypointPredictor, validate_model
from tests.helpers import write_synthetic_csv
from trainer import events as ev
from trainer.architecture import HEADS, build_model, inference_copy
from trainer.augment import ROBUST_AUGMENTATION, AugmentConfig, augment_batch, augment_one, blur, occlude
from trainer.config import RecipeConfig
from trainer.export import load_keras_model
from trainer.recipe import Cancelled, train

TINY = dict(widths=(4, 8, 8, 16, 16), learning_rates=(1e-3, 1e-4), batch_sizes=(16,), epochs_per_stage=2,
            pseudo_label=False, test_size=8, val_fraction=0.2)


@pytest.mark.parametrize("head", HEADS)
def test_every_head_gives_30_outputs_and_its_inference_copy_agrees(head):
    x = np.random.default_rng(0).random((3, 96, 96, 1), np.float32)
    mixed = build_model((4, 8, 8, 16, 16), head=head, mixed_precision=True)
    assert mixed.output_shape == (None, 30)
    assert mixed.get_layer("conv2").compute_dtype == "bfloat16"
    plain = inference_copy(mixed)
    assert all(layer.compute_dtype == "float32" for layer in plain.layers if layer.weights)
    np.testing.assert_allclose(plain(x, training=False), mixed(x, training=False), atol=0.02)


def test_softargmax_reads_the_peak_cell_as_its_centre():
    import keras

    model = build_model((4, 4, 4, 4, 4), head="softargmax", dropout=0.0)
    side = model.get_layer("heatmaps").output.shape[1]
    assert side == 6  # the last block is not pooled: 96 / 2**4
    probe = keras.Model(model.get_layer("heatmaps").output, model.output)  # heatmaps -> keypoints
    heat = np.full((1, side, side, 15), -50.0, np.float32)
    heat[0, 1, 4, :] = 50.0  # every keypoint peaks at row 1, column 4
    xy = probe(heat).numpy().reshape(15, 2)
    np.testing.assert_allclose(xy, np.tile([(4.5 / 6) * 2 - 1, (1.5 / 6) * 2 - 1], (15, 1)), atol=1e-4)


def test_wing_loss_is_logarithmic_below_its_width_and_linear_above():
    from trainer.losses import make_loss, wing_loss_class

    loss = wing_loss_class()(width=10.0, curvature=2.0)

    def wing(px: float) -> float:
        y_true = np.zeros((1, 30), np.float32)
        return float(loss(y_true, np.full((1, 30), px / 48, np.float32)))

    assert wing(0) == 0
    assert wing(3) == pytest.approx(10 * math.log(1 + 3 / 2), rel=1e-5)
    assert wing(20) - wing(15) == pytest.approx(5, rel=1e-4)  # slope 1 in crop px above the width
    assert wing(10 - 1e-3) == pytest.approx(wing(10 + 1e-3), abs=1e-2)  # continuous at the width
    assert make_loss("l1") == "mean_absolute_error" and make_loss("mse") == "mse"
    with pytest.raises(ValueError, match="loss must be one of"):
        make_loss("huber")


def test_unknown_levers_are_refused_before_training():
    with pytest.raises(ValueError, match="loss must be one of.*head must be one of.*mixed precision"):
        RecipeConfig(loss="huber", head="dense", mixed_precision="yes")


def test_a_bf16_wing_softargmax_run_resumes_and_saves_a_usable_float32_model(tmp_path):
    data = write_synthetic_csv(tmp_path / "tiny.csv", n=48, people=12)
    config = RecipeConfig(data=str(data), loss="wing", head="softargmax", mixed_precision=True, **TINY)
    run = tmp_path / "run"
    cancel = threading.Event()

    def stop_after_two_epochs(e):
        if isinstance(e, ev.EpochEnd) and e.stage == 0 and e.epoch == 1:
            cancel.set()

    with pytest.raises(Cancelled):
        train(config, run, ev.EventBus([stop_after_two_epochs]), cancel_event=cancel)
    card = train(config, run)  # resumes from a checkpoint compiled with the wing loss
    epochs = [e for e in ev.read_events(run / "events.jsonl") if e["event"] == ev.EPOCH_END]
    assert [(e["stage"], e["epoch"]) for e in epochs] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    # progress reports RMSE in crop px from the MSE metric, not from the wing loss
    assert all(e["rmse_px"] != pytest.approx(math.sqrt(e["loss"]) * 48) for e in epochs)
    model = load_keras_model(run / "model.keras")
    assert all(layer.compute_dtype == "float32" for layer in model.layers if layer.weights)
    validate_model(run / "model.keras")
    assert KeypointPredictor(run / "model.keras").predict_crops(np.zeros((96, 96), np.uint8)).shape == (1, 15, 2)
    assert card.config["loss"] == "wing" and card.config["head"] == "softargmax"
    assert json.loads((run / "config.json").read_text())["mixed_precision"] is True


def _dot(x: int, y: int) -> np.ndarray:
    img = np.zeros((96, 96), np.uint8)
    cv2.circle(img, (x, y), 2, 255, -1)
    return img


def test_blur_spreads_a_dot_without_moving_it():
    blurred = blur(_dot(30, 60), 1.5)
    ys, xs = np.nonzero(blurred)
    w = blurred[ys, xs].astype(float)
    np.testing.assert_allclose([(xs * w).sum() / w.sum(), (ys * w).sum() / w.sum()], [30, 60], atol=0.05)
    assert blurred.max() < 255 and np.count_nonzero(blurred) > np.count_nonzero(_dot(30, 60))


def test_occlusion_paints_only_its_rectangle():
    image = np.random.default_rng(1).integers(0, 255, (96, 96), np.uint8)
    out = occlude(image, (10, 20, 30, 15), 77)
    assert (out[20:35, 10:40] == 77).all()
    outside = np.ones((96, 96), bool)
    outside[20:35, 10:40] = False
    assert (out[outside] == image[outside]).all()


def test_blur_and_occlusion_never_move_keypoints():
    rng = np.random.default_rng(2)
    k = rng.uniform(20, 76, (15, 2)).astype(np.float32)
    pixels_only = AugmentConfig(0.0, 0.0, (1.0, 1.0), 0.0, 0.0, 0.0, blur_probability=1.0, occlusion_probability=1.0)
    image = rng.integers(0, 255, (96, 96), np.uint8)
    changed = 0
    for _ in range(20):
        out, moved = augment_one(image, k, rng, pixels_only)
        np.testing.assert_array_equal(moved, k)
        changed += not np.array_equal(out, image)
    assert changed == 20


def test_strong_augmentation_keeps_labelled_points_inside_the_crop():
    rng = np.random.default_rng(3)
    images = rng.integers(0, 255, (64, 96, 96), dtype=np.uint8)
    k = rng.uniform(15, 81, (64, 15, 2)).astype(np.float32)
    config = AugmentConfig(**ROBUST_AUGMENTATION)
    assert config.blur_probability > 0 and config.occlusion_probability > 0
    _, out = augment_batch(images, k, rng, config)
    assert out.min() >= 0 and out.max() <= 95


def test_an_ensemble_is_one_finished_run_whose_output_is_its_members_mean(tmp_path, monkeypatch):
    from trainer import runfolders
    from trainer.architecture import average_models
    from trainer.cli import main
    from trainer.ensemble import ensemble

    runs = tmp_path / "runs"
    monkeypatch.setenv("FKS_RUNS_DIR", str(runs))
    data = write_synthetic_csv(tmp_path / "tiny.csv", n=48, people=12)
    quick = dict(TINY, epochs_per_stage=1)
    train(RecipeConfig(data=str(data), head="softargmax", **quick), runs / "a")
    train(RecipeConfig(data=str(data), seed=0, loss="l1", **quick), runs / "b")
    assert main(["ensemble", "a", "b", "--run", "ab"]) == 0
    members = [load_keras_model(runs / name / "model.keras") for name in ("a", "b")]
    x = np.random.default_rng(4).random((2, 96, 96, 1), np.float32)
    expected = (members[0](x).numpy() + members[1](x).numpy()) / 2
    np.testing.assert_allclose(KeypointPredictor(runs / "ab" / "model.keras").predict_normalised(x), expected, atol=1e-5)
    np.testing.assert_allclose(average_models(members)(x), expected, atol=1e-6)
    assert runfolders.status(runs / "ab") == "finished"
    card = json.loads((runs / "ab" / "model.json").read_text())
    assert [m["run"] for m in card["ensemble_of"]] == ["a", "b"]
    assert main(["ensemble", "a", "b", "--run", "ab"]) == 2  # an existing run is never overwritten
    train(RecipeConfig(data=str(data), seed=5, **quick), runs / "other-split")
    with pytest.raises(ValueError, match="not split alike"):
        ensemble(["a", "other-split"], "mixed", runs)
    assert not (runs / "mixed").exists()
