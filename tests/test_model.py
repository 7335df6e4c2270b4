import numpy as np
import pytest

from core.model import (KeypointPredictor, ModelError, build_model, denormalise_keypoints, load_keras_model,
                        normalise_keypoints, onnx_path_for, to_model_input)


def test_architecture_follows_the_recipe():
    m = build_model()
    convs = [l for l in m.layers if l.__class__.__name__ == "Conv2D"]
    assert [c.filters for c in convs] == [32, 64, 128, 256, 512]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert sum(l.__class__.__name__ == "BatchNormalization" for l in m.layers) == 5
    assert sum(l.__class__.__name__ == "MaxPooling2D" for l in m.layers) == 5
    assert [l.rate for l in m.layers if l.__class__.__name__ == "Dropout"] == [0.2, 0.2, 0.2]
    assert m.layers[-2].__class__.__name__ == "GlobalAveragePooling2D"
    assert m.output_shape == (None, 30)


def test_normalisation_round_trip():
    k = np.random.default_rng(0).uniform(0, 95, (4, 15, 2))
    np.testing.assert_allclose(denormalise_keypoints(normalise_keypoints(k)), k, atol=1e-4)


def test_onnx_inference_matches_keras(tiny_model_path):
    model = load_keras_model(tiny_model_path)
    # give batch norm non-trivial statistics so the comparison means something
    for layer in model.layers:
        if layer.__class__.__name__ == "BatchNormalization":
            layer.moving_mean.assign(np.random.default_rng(1).normal(0, 0.1, layer.moving_mean.shape))
    from core.model import save_model

    path = save_model(model, tiny_model_path.parent / "stats.keras")
    predictor = KeypointPredictor(path)
    crops = np.random.default_rng(3).integers(0, 256, (5, 96, 96), dtype=np.uint8)
    keras_out = model(to_model_input(crops), training=False).numpy()
    np.testing.assert_allclose(predictor.predict_normalised(to_model_input(crops)), keras_out, atol=1e-4)
    one = predictor.predict_crops(crops[0])
    assert one.shape == (1, 15, 2)
    np.testing.assert_allclose(one[0], denormalise_keypoints(keras_out[0]), atol=1e-2)


def test_stale_or_missing_onnx_is_re_exported(tiny_model_path, tmp_path):
    import os
    import shutil

    copy = tmp_path / "copy.keras"
    shutil.copy(tiny_model_path, copy)
    assert not onnx_path_for(copy).exists()
    KeypointPredictor(copy)
    exported = onnx_path_for(copy).read_bytes()
    os.utime(onnx_path_for(copy), (1, 1))  # older than the .keras, as after a git checkout: still current
    KeypointPredictor(copy)
    assert onnx_path_for(copy).read_bytes() == exported
    other = build_model(widths=(4, 4, 4, 4, 4))  # an ONNX file of other weights is replaced
    from core.model import export_onnx

    export_onnx(other, onnx_path_for(copy), source_sha256="something else")
    predictor = KeypointPredictor(copy)
    keras_model = load_keras_model(copy)
    x = to_model_input(np.zeros((1, 96, 96), np.uint8))
    np.testing.assert_allclose(predictor.predict_normalised(x), keras_model(x, training=False).numpy(), atol=1e-4)


def test_missing_and_corrupt_model_files_raise_model_error(tmp_path):
    with pytest.raises(ModelError, match="No model file"):
        KeypointPredictor(tmp_path / "nope.keras")
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="bad.keras is unreadable"):
        load_keras_model(bad)


def test_int8_twin_is_close_to_the_float_model_and_tied_to_its_weights(tiny_model_path, tmp_path):
    import shutil

    from core.model import file_sha256, int8_path_for, quantize_onnx

    copy = tmp_path / "int8.keras"
    shutil.copy(tiny_model_path, copy)
    with pytest.raises(ModelError, match="no int8 twin"):
        KeypointPredictor(copy, int8=True)
    float_predictor = KeypointPredictor(copy)  # exports the float twin
    crops = np.random.default_rng(5).integers(0, 256, (16, 96, 96), dtype=np.uint8)
    quantize_onnx(onnx_path_for(copy), crops, int8_path_for(copy), file_sha256(copy))
    int8 = KeypointPredictor(copy, int8=True)
    assert np.abs(int8.predict_crops(crops) - float_predictor.predict_crops(crops)).max() < 1.0  # crop px
    quantize_onnx(onnx_path_for(copy), crops, int8_path_for(copy), "other weights")
    with pytest.raises(ModelError, match="no int8 twin"):
        KeypointPredictor(copy, int8=True)
