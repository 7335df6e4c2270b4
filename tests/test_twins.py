"""The webcam's choice between the float and int8 keypoint twins, per batch size, on real models."""
import numpy as np
import pytest

from core.model import KeypointPredictor, int8_path_for
from core.twins import FasterTwin


@pytest.fixture(scope="module")
def shipped_twins(app_model_path):
    if not int8_path_for(app_model_path).is_file():
        pytest.skip("no int8 twin beside the app's model")
    return KeypointPredictor(app_model_path), KeypointPredictor(app_model_path, int8=True)


def test_the_faster_model_serves_every_batch_size_whichever_role_it_has(shipped_twins, tiny_model_path):
    shipped, _ = shipped_twins
    tiny = KeypointPredictor(tiny_model_path)  # a fraction of the shipped model's work per crop
    for twins in (FasterTwin(shipped, tiny, calls=3), FasterTwin(tiny, shipped, calls=3)):
        assert set(twins.timings_ms) == {1, 2, 4, 8, 16}
        assert all(twins.choice(n) is tiny for n in (1, 2, 3, 8, 16, 40)), twins.summary()


def test_each_batch_size_goes_to_the_twin_measured_faster_for_it(shipped_twins):
    float_twin, int8_twin = shipped_twins
    twins = FasterTwin(float_twin, int8_twin, calls=3)
    for n, (float_ms, int8_ms) in twins.timings_ms.items():
        assert 0 < float_ms < 1000 and 0 < int8_ms < 1000
        assert twins.choice(n) is (int8_twin if int8_ms < float_ms else float_twin)
    assert twins.choice(3) is twins.choice(4) and twins.choice(100) is twins.choice(16)  # nearest measured size
    crops = np.random.default_rng(1).integers(0, 256, (16, 96, 96), dtype=np.uint8)
    for n in (1, 2, 16):
        assert np.array_equal(twins.predict_crops(crops[:n]), twins.choice(n).predict_crops(crops[:n]))
    assert twins.predict_crops(crops[0]).shape == (1, 15, 2)


def test_the_webcam_pipeline_chooses_per_batch_when_the_card_approves_int8(app_model_path, shipped_twins):
    from core.pipeline import FacePipeline

    pipeline = FacePipeline(app_model_path)
    if not pipeline.predictor.card.inference.int8_live:
        pytest.skip("the app's model card does not approve its int8 twin")
    live = pipeline.live_predictor
    assert isinstance(live, FasterTwin) and live.float_twin is pipeline.predictor
    assert pipeline.live_predictor is live  # measured once
