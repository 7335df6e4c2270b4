"""core.detector at its edges: wrong image layouts, images too small for a face, large images shrunk and mapped back."""
import cv2
import numpy as np
import pytest

from core.detector import DetectorSettings, FaceDetector


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


@pytest.mark.parametrize("shape", [(40, 40, 3), (40,), (2, 40, 40)])
def test_anything_but_a_2d_grayscale_image_is_refused(detector, shape):
    with pytest.raises(ValueError, match="2-D grayscale"):
        detector.detect(np.zeros(shape, np.uint8))


@pytest.mark.parametrize("shape", [(1, 1), (15, 300), (64, 64)])
def test_small_or_blank_images_give_an_empty_int_box_array(detector, shape):
    boxes = detector.detect(np.full(shape, 128, np.uint8))
    assert boxes.shape == (0, 4) and boxes.dtype.kind == "i"
    per_k = detector.detect_at_sensitivities(np.full(shape, 128, np.uint8), (0, 3, 5))
    assert set(per_k) == {0, 3, 5} and all(b.shape == (0, 4) for b in per_k.values())


def test_a_large_image_is_searched_shrunk_and_its_boxes_come_back_in_its_own_pixels(detector, photos):
    gray = cv2.imread(str(photos / "james.jpg"), cv2.IMREAD_GRAYSCALE)
    (box,) = detector.detect(gray)
    big = cv2.resize(gray, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    assert max(big.shape) > DetectorSettings().max_side  # the detector searches a shrunk copy
    (big_box,) = detector.detect(big)
    np.testing.assert_allclose(big_box, 3 * box, atol=0.08 * 3 * box[2])  # same face, in the large image's pixels
    # a setting passed per call wins over the detector's own: no shrinking at all finds the same face
    (unshrunk,) = detector.detect(big, DetectorSettings(max_side=10_000, min_size_fraction=0.1))
    np.testing.assert_allclose(unshrunk, big_box, atol=0.08 * big_box[2])


def test_more_neighbours_required_never_finds_more_boxes(detector, photos):
    gray = cv2.imread(str(photos / "obamas4.jpg"), cv2.IMREAD_GRAYSCALE)
    counts = [len(b) for b in detector.detect_at_sensitivities(gray, (1, 3, 5, 10, 30)).values()]
    assert counts == sorted(counts, reverse=True) and counts[2] == 2 and counts[0] >= 2
