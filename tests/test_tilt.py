"""Faces at any roll: turned detection boxes, one box per face across angles, turned privacy regions and
rejected boxes, and the rotated evaluation (frames turned with their labels)."""
from dataclasses import replace

import cv2
import numpy as np
import pytest

from core import overlays
from core.detector import (
    DetectorSettings,
    FaceDetector,
    RollSearch,
    centres_inside,
    detect_any_roll,
    merged_windows,
    one_turned_box_per_face,
    outside_share,
    search_around,
    search_copies,
    search_turned_copies,
    turned_box_iou,
    turned_copy,
)
from core.geometry import turn_image
from core.images import load_image
from core.model import KeypointPredictor
from core.paths import SHIPPED_MODEL
from core.pipeline import REMEMBERED_READINGS
from trainer.evaluate import rotate_frame
from trainer.frames import label_ious


def test_turn_image_moves_a_drawn_dot_where_its_matrix_says():
    image = np.zeros((120, 200), np.uint8)
    cv2.circle(image, (150, 30), 3, 255, -1)
    for angle in (30.0, -45.0, 90.0):
        turned, m = turn_image(image, angle, border=cv2.BORDER_CONSTANT)
        ys, xs = np.nonzero(turned > 100)
        np.testing.assert_allclose((xs.mean(), ys.mean()), np.array([150.0, 30.0]) @ m[:, :2].T + m[:, 2], atol=0.6)
        # the canvas holds all of the image: every corner lands inside
        corners = np.array([[0, 0], [199, 0], [199, 119], [0, 119]]) @ m[:, :2].T + m[:, 2]
        assert (corners >= -0.5).all() and (corners[:, 0] <= turned.shape[1] - 0.5).all()
        assert (corners[:, 1] <= turned.shape[0] - 0.5).all()
    # counter-clockwise as shown: a point right of the centre moves up
    _, m = turn_image(image, 30.0)
    right = np.array([180.0, 59.5]) @ m[:, :2].T + m[:, 2]
    centre = np.array([99.5, 59.5]) @ m[:, :2].T + m[:, 2]
    assert right[1] < centre[1] - 30


def test_one_turned_box_per_face_across_angles():
    same_face = np.array([[100, 100, 80, 80, 0.0], [104, 98, 76, 76, 25.0], [98, 103, 84, 84, -25.0]])
    assert one_turned_box_per_face(same_face, np.array([0.6, 0.95, 0.7])).tolist() == [1]
    beside = np.array([[100, 100, 80, 80, 0.0], [300, 100, 80, 80, 30.0]])
    assert sorted(one_turned_box_per_face(beside, np.array([0.6, 0.9])).tolist()) == [0, 1]
    eyes_inside = np.array([[100, 100, 120, 120, 20.0], [140, 130, 40, 40, 20.0]])  # IoU < 0.3, inside the face
    assert one_turned_box_per_face(eyes_inside, np.array([0.95, 0.9])).tolist() == [0]  # a worse small one goes
    # a collar found on a copy turned another way, just touching the face's box (IoU 0.03): one face
    collar = np.array([[100, 100, 80, 80, 0.0], [120, 165, 80, 80, -30.0]])
    assert one_turned_box_per_face(collar, np.array([1.9, 0.95])).tolist() == [0]
    same_angle = np.c_[collar[:, :4], [0.0, 0.0]]  # at one angle only the usual IoU 0.3 applies
    assert sorted(one_turned_box_per_face(same_angle, np.array([1.9, 0.95])).tolist()) == [0, 1]
    assert len(one_turned_box_per_face(np.zeros((0, 5)), np.zeros(0))) == 0


def test_turned_box_iou_is_the_squares_own_overlap():
    upright = np.array([0.0, 0.0, 10.0, 10.0, 0.0])
    assert turned_box_iou(upright, upright) == pytest.approx(1.0)
    assert turned_box_iou(upright, np.array([5.0, 0.0, 10.0, 10.0, 0.0])) == pytest.approx(50 / 150)
    # a square turned 45 deg about the same centre: the octagon they share is 2 (sqrt 2 - 1) of each square
    shared = 100 * 2 * (np.sqrt(2) - 1)
    assert turned_box_iou(upright, np.array([0.0, 0.0, 10.0, 10.0, 45.0])) == pytest.approx(shared / (200 - shared), rel=1e-4)
    assert turned_box_iou(upright, np.array([30.0, 0.0, 10.0, 10.0, 30.0])) == 0.0


def test_label_ious_of_a_turned_box_equal_the_upright_ones():
    points = np.random.default_rng(0).uniform(102, 178, (68, 2))  # about the box itself
    box = np.array([[100.0, 100.0, 80.0, 80.0]])
    upright = label_ious(box, points)[0]
    centre = np.array([139.5, 139.5])
    for angle in (20.0, -45.0):
        a = np.deg2rad(angle)
        turn = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])  # counter-clockwise as shown
        turned_points = (points - centre) @ turn.T + centre
        assert label_ious(box, turned_points, [angle])[0] == pytest.approx(upright, abs=1e-9)
        assert label_ious(box, turned_points)[0] < upright  # read upright, the same box fits worse


def test_the_upright_copy_gives_todays_boxes_exactly(photos):
    gray = cv2.cvtColor(load_image(photos / "obamas4.jpg"), cv2.COLOR_BGR2GRAY)
    detector = FaceDetector()
    found = detect_any_roll(detector, gray, roll=RollSearch())
    np.testing.assert_array_equal(found[found[:, 4] == 0][:, :4], detector.detect(gray))


def test_in_between_copies_look_only_around_the_copies_weak_boxes(photos, monkeypatch):
    import core.detector

    detector, roll = FaceDetector(), RollSearch()
    gray, _ = turn_image(cv2.cvtColor(load_image(photos / "james.jpg"), cv2.COLOR_BGR2GRAY), 25.0,
                         border=cv2.BORDER_CONSTANT)  # James's own roll (about 11 deg) + 25
    calls = []

    def spy(detector, gray, angle, hints, settings, roll):
        calls.append((angle, hints, roll.scale_factor))
        return search_around(detector, gray, angle, hints, settings, roll)

    monkeypatch.setattr(core.detector, "search_around", spy)
    found = detect_any_roll(detector, gray, roll=roll)
    base = detect_any_roll(detector, gray, roll=RollSearch(between_angles_deg=()))
    np.testing.assert_array_equal(found[np.isin(found[:, 4], [0, *roll.angles_deg])], base)  # it only adds
    assert np.isin(found[:, 4], roll.between_angles_deg).any()
    # each in-between copy is searched only around weak boxes of copies within 7.5 deg of it, and each copy a
    # second time only around its own, all at the finer scale step
    between = [(angle, hints) for angle, hints, _ in calls if angle in roll.between_angles_deg]
    second = [(angle, hints) for angle, hints, _ in calls if angle in roll.angles_deg]
    assert between and second and len(between) + len(second) == len(calls)
    assert {step for *_, step in calls} == {roll.second_look_scale_factor}
    assert all(np.isin(hints[:, 4], roll.angles_deg).all() and (np.abs(hints[:, 4] - angle) <= roll.between_reach_deg).all()
               for angle, hints in between)
    assert all((hints[:, 4] == angle).all() for angle, hints in second)
    # without the second look the in-between windows keep the copies' scale step
    calls.clear()
    detect_any_roll(detector, gray, roll=replace(roll, second_look_scale_factor=None))
    assert calls and all(angle in roll.between_angles_deg for angle, *_ in calls)
    assert {step for *_, step in calls} == {roll.scale_factor}
    # around a box on the face (the 30 deg copy's), the copy turned 22.5 deg finds the face; around one in a far
    # corner, nothing; around none, nothing
    face = base[base[:, 4] == 30.0][0]
    near = search_around(detector, gray, 22.5, face[None], DetectorSettings(), roll)
    assert max(turned_box_iou(face, b) for b in near) > 0.5
    corner = np.array([[0.0, 0.0, 40.0, 40.0, 30.0]])
    assert len(search_around(detector, gray, 22.5, corner, DetectorSettings(), roll)) == 0
    assert search_around(detector, gray, 22.5, np.zeros((0, 5)), DetectorSettings(), roll).shape == (0, 5)
    # the user's smallest face holds in the windows too: a face smaller than it is not looked for
    assert len(search_around(detector, gray, 22.5, face[None], DetectorSettings(min_size_fraction=0.9), roll)) == 0
    # and the copies look for nothing under copy_smallest_face (the cascade's first, costliest step)
    copy, _, inner = turned_copy(gray, 30.0, DetectorSettings(), roll)
    assert inner.min_size_fraction * min(copy.shape) == pytest.approx(roll.copy_smallest_face)
    # a blank image leaves no weak box, so no in-between copy is searched at all
    calls.clear()
    assert len(detect_any_roll(detector, np.full((240, 320), 128, np.uint8), roll=roll)) == 0
    assert calls == []


def test_in_between_windows_merge_where_they_overlap():
    windows = np.array([[0, 0, 50, 50, 30], [40, 40, 90, 90, 20], [200, 0, 240, 40, 25], [80, 85, 120, 120, 40.0]])
    merged = sorted(map(tuple, merged_windows(windows)))
    assert merged == [(0, 0, 120, 120, 20), (200, 0, 240, 40, 25)]  # a chain of overlaps is one window
    assert merged_windows(np.zeros((0, 5))) == []


def test_centres_inside_turned_boxes():
    face = np.array([[100.0, 100.0, 40.0, 40.0, 45.0]])  # a diamond about (120, 120), reaching 28 px each way
    boxes = np.array([[110.0, 110.0, 20.0, 20.0, 10.0],  # centre (120, 120)
                      [132.0, 98.0, 10.0, 10.0, 0.0],  # centre (137, 103): inside the square upright, not turned
                      [130.0, 110.0, 20.0, 20.0, -30.0],  # centre (140, 120)
                      [125.0, 125.0, 60.0, 60.0, 0.0]])  # its corner inside, its centre (155, 155) not
    np.testing.assert_array_equal(centres_inside(boxes, face), [True, False, True, False])
    np.testing.assert_array_equal(centres_inside(boxes, np.c_[face[:, :4], [0.0]]), [True, True, True, False])
    assert not centres_inside(boxes, np.zeros((0, 5))).any()


def test_outside_share_of_turned_boxes():
    boxes = np.array([[0, 0, 10, 10, 0], [-5, 0, 10, 10, 0], [0, 0, 10, 10, 45], [50, 50, 10, 10, 0]], float)
    # a diamond in the corner pokes out by a triangle (2.07 px high) on each side: 2 x 2.07^2 of its 100 px^2
    np.testing.assert_allclose(outside_share(boxes, (20, 20, 3)), [0, 0.5, 0.0858, 1], atol=1e-3)
    assert outside_share(np.zeros((0, 5)), (20, 20)).shape == (0,)
    assert outside_share(np.array([[5.0, 5.0, 0.0, 0.0, 30.0]]), (20, 20)).tolist() == [1.0]  # no area: nothing inside


def _frame_and_its_face(shared_data, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A frame of the shared 68-point set, grayscale, and its labelled points."""
    from trainer.frames import FrameSource

    source = FrameSource(shared_data / "youtube-faces-68" / "training.zip")
    names, points = source.read_labels()
    return source.read_gray(name), points[names.index(name)]


def test_a_turned_box_reaching_out_of_the_image_is_no_candidate(shared_data, pipelines, monkeypatch):
    """A validation person's upright frame where the copy turned by -15 deg, looked at a second time, fires on
    the turned canvas above his head (a fifth of the box outside the picture) and the verifier passes it."""
    _, any_roll = pipelines
    gray, face_points = _frame_and_its_face(shared_data, "Lindsey_Graham_01.jpg")
    found = any_roll.detect(gray)
    assert (label_ious(found.boxes_xywh, face_points, found.angles_deg) >= 0.5).tolist() == [True]
    candidates = any_roll.candidates_any_roll(gray)
    assert (outside_share(candidates, gray.shape)[candidates[:, 4] != 0] <= any_roll.roll.max_outside_share).all()
    monkeypatch.setattr(any_roll, "roll", replace(any_roll.roll, max_outside_share=1.0))
    anywhere = any_roll.detect(gray)
    outside = outside_share(np.hstack([anywhere.boxes_xywh, anywhere.angles_deg[:, None]]), gray.shape)
    assert len(anywhere.boxes_xywh) == 2 and outside.max() > 0.2


def test_where_no_face_is_found_the_in_between_copies_are_searched_whole(shared_data, photos, pipelines,
                                                                         monkeypatch):
    """A validation person's frame turned -15 deg: neither the copies nor the windows around their weak boxes
    find her face, the copy turned -22.5 deg does; a frame with a face found searches no more copies."""
    import core.pipeline

    _, any_roll = pipelines
    gray, face_points = rotate_frame(*_frame_and_its_face(shared_data, "JK_Rowling_22.jpg"), -15.0)
    found = any_roll.detect(gray)
    assert (label_ious(found.boxes_xywh, face_points, found.angles_deg) >= 0.5).tolist() == [True]
    assert found.angles_deg.tolist() == [-22.5]
    monkeypatch.setattr(any_roll, "roll", replace(any_roll.roll, whole_between_when_no_face=False))
    assert len(any_roll.detect(gray).boxes_xywh) == 0
    monkeypatch.undo()
    searched = []

    def spy(detector, gray, angles_deg, settings, roll):
        searched.append(angles_deg)
        return search_turned_copies(detector, gray, angles_deg, settings, roll)

    monkeypatch.setattr(core.pipeline, "search_turned_copies", spy)
    any_roll.detect(gray)
    assert searched == [any_roll.roll.between_angles_deg]
    searched.clear()
    assert len(any_roll.detect(load_image(photos / "james.jpg")).boxes_xywh) == 1
    assert searched == []


@pytest.fixture(scope="module")
def pipelines():
    from core.pipeline import FacePipeline

    return FacePipeline(SHIPPED_MODEL, roll=False, refine_roll=False), FacePipeline(SHIPPED_MODEL)


@pytest.mark.parametrize("turn", [-40.0, -20.0, 30.0, 45.0])
def test_a_tilted_face_is_found_once_with_its_angle_and_read_upright(photos, pipelines, turn):
    today, any_roll = pipelines
    image = load_image(photos / "james.jpg")
    upright = any_roll.find_faces(image)
    assert len(upright) == 1
    turned, m = turn_image(image, turn, border=cv2.BORDER_CONSTANT)
    faces = any_roll.find_faces(turned)
    assert len(faces) == 1
    face = faces[0]
    eyes = upright[0].keypoints_px[0] - upright[0].keypoints_px[1]
    roll = -np.degrees(np.arctan2(eyes[1], eyes[0])) + turn  # James's own roll (about 11 deg) and the turn
    assert abs(face.angle_deg - roll) <= 16  # the copy that found it (the cascade fires up to about 16 deg off)
    if face.angle_deg != 0:
        assert abs(face.crop.angle_deg - roll) <= 3  # turned further by the eye line
    expected = upright[0].keypoints_px @ m[:, :2].T + m[:, 2]
    iod = np.linalg.norm(expected[0] - expected[1])
    assert np.linalg.norm(face.keypoints_px - expected, axis=1).mean() / iod < 0.05
    if abs(turn) >= 30:
        assert len(today.find_faces(turned)) == 0  # what the upright detector did with it


def test_the_detection_step_looks_harder_only_where_no_face_is_found_yet(photos, pipelines, monkeypatch):
    import core.detector

    _, any_roll = pipelines
    gray = cv2.cvtColor(load_image(photos / "james.jpg"), cv2.COLOR_BGR2GRAY)
    looked_around = []

    def spy(detector, gray, angle, hints, settings, roll):
        looked_around.append(hints)
        return search_around(detector, gray, angle, hints, settings, roll)

    monkeypatch.setattr(core.detector, "search_around", spy)
    found = any_roll.detect(gray)
    assert len(found.boxes_xywh) == 1
    face = np.hstack([found.boxes_xywh, found.angles_deg[:, None]])
    _, weak = search_copies(any_roll.detector, gray, roll=any_roll.roll)
    on_face = centres_inside(weak, face)
    assert on_face.any()  # the copies leave weak boxes on James's face, found by the upright pass and the copies...
    assert not centres_inside(np.vstack([np.zeros((0, 5)), *looked_around]), face).any()  # ...none looked around
    # searching around every weak box (the webcam's detection process) looks around those too, and finds him alike
    looked_around.clear()
    monkeypatch.setattr(any_roll, "roll", replace(any_roll.roll, skip_found_faces=False))
    everywhere = any_roll.detect(gray)
    assert centres_inside(np.vstack(looked_around), face).sum() >= on_face.sum()
    assert len(everywhere.boxes_xywh) == 1 and turned_box_iou(face[0], np.r_[everywhere.boxes_xywh[0],
                                                                             everywhere.angles_deg[0]]) > 0.5


@pytest.mark.parametrize("turn", [-25.0, 30.0])
def test_a_small_tilted_face_is_found_on_copies_enlarged_to_the_copy_side(photos, pipelines, turn):
    _, any_roll = pipelines
    image = load_image(photos / "gus.jpg")
    small = cv2.resize(image, None, fx=100 / max(image.shape[:2]), fy=100 / max(image.shape[:2]),
                       interpolation=cv2.INTER_AREA)
    upright = any_roll.find_faces(small)
    assert len(upright) == 1
    turned, to_turned = turn_image(small, turn, border=cv2.BORDER_CONSTANT)
    gray = cv2.cvtColor(turned, cv2.COLOR_BGR2GRAY)
    roll = RollSearch()
    _, matrix, _ = turned_copy(gray, turn, DetectorSettings(), roll)
    assert np.hypot(*matrix[0, :2]) == pytest.approx(roll.copy_side / max(gray.shape))  # enlarged, not left as is
    found = any_roll.find_faces(turned)
    assert len(found) == 1  # Gus's face, where turning the image took it, with his roll
    face_there = to_turned[:, :2] @ upright[0].keypoints_px.mean(0) + to_turned[:, 2]
    assert np.linalg.norm(found[0].keypoints_px.mean(0) - face_there) < 0.15 * found[0].box_xywh[2]
    assert abs(found[0].angle_deg - (upright[0].angle_deg + turn)) <= 15
    at_own_size = RollSearch(copy_side=max(gray.shape))
    assert len(any_roll.verify_any_roll(gray, detect_any_roll(any_roll.detector, gray, roll=at_own_size)).boxes_xywh) == 0


def test_a_turned_box_the_keypoint_model_reads_differently_mirrored_is_dropped(shared_data, pipelines):
    """A validation person's upright frame where the copy turned by -15 deg fires on his collar and the wall
    beside his face and the verifier passes it: the keypoint model reads that crop and its mirror differently,
    the face alike."""
    _, any_roll = pipelines
    gray, face_points = _frame_and_its_face(shared_data, "Albert_Brooks_32.jpg")
    candidates = any_roll.candidates_any_roll(gray)
    scores = any_roll.verifier.score_boxes(gray, candidates[:, :4], candidates[:, 4])
    on_face = label_ious(candidates[:, :4], face_points, candidates[:, 4]) >= 0.5
    turned_pass = (candidates[:, 4] != 0) & (scores >= any_roll.roll.turned_threshold)
    assert (turned_pass & on_face).any()
    assert candidates[turned_pass & ~on_face, 4].tolist() == [-15.0, -15.0]  # the copy's box and its second look's
    limit = any_roll.roll.max_flip_disagreement
    disagreement = any_roll.flip_disagreement(gray, candidates[:, :4], candidates[:, 4])
    assert (disagreement[turned_pass & ~on_face] > limit).all()
    assert (disagreement[turned_pass & on_face] <= limit).any()
    found = any_roll.verify_any_roll(gray, candidates)
    assert (label_ious(found.boxes_xywh, face_points, found.angles_deg) >= 0.5).tolist() == [True]
    from core.pipeline import FacePipeline

    shown = any_roll.verify_any_roll(gray, candidates, with_rejected=True)  # "Show rejected boxes" draws it
    assert shown.rejected_angles_deg[shown.rejected_by_flip_check].tolist() == [-15.0]
    assert (label_ious(shown.rejected_xywh[shown.rejected_by_flip_check], face_points, [-15.0]) < 0.3).all()
    unchecked = FacePipeline(SHIPPED_MODEL, roll=replace(any_roll.roll, max_flip_disagreement=None))
    assert len(unchecked.verify_any_roll(gray, candidates).boxes_xywh) == 2  # the wall's box comes back


class _ListedScores:
    """A face verifier that gives each candidate box the score listed for it (looked up by x, y, w, h)."""

    def __init__(self, candidates: np.ndarray, scores: np.ndarray, threshold: float):
        self.index = {tuple(c[:4]): i for i, c in enumerate(candidates)}
        self.scores, self.threshold = scores, threshold

    def score_boxes(self, gray, boxes, angles):
        return self.scores[[self.index[tuple(b)] for b in boxes]]


def _pipeline_with_listed_scores(tiny_model_path, candidates, scores, threshold: float):
    """A pipeline whose verifier scores the candidates as listed, turned boxes needing 0.6 and the flip check's
    0.5 (the test sets what flip_disagreement answers)."""
    from core.pipeline import FacePipeline

    pipeline = FacePipeline(tiny_model_path, roll=RollSearch(turned_threshold=0.6, max_flip_disagreement=0.5),
                            verifier=False)
    pipeline.verifier = _ListedScores(candidates, scores, threshold)
    return pipeline


def test_the_flip_check_reads_only_boxes_that_would_be_kept(tiny_model_path, monkeypatch):
    """Checking the kept turned boxes until all pass keeps what checking every candidate first would."""
    rng = np.random.default_rng(0)
    centres = rng.uniform(0, 300, (40, 2))
    candidates = np.c_[centres, np.full((40, 2), 60.0), rng.choice([0.0, 15.0, -30.0, 45.0], 40)]
    scores = rng.uniform(0.5, 1.0, 40)
    fails = rng.uniform(size=40) < 0.4  # the boxes the keypoint model would read differently mirrored
    pipeline = _pipeline_with_listed_scores(tiny_model_path, candidates, scores, 0.55)
    index = pipeline.verifier.index
    read: list[int] = []

    def flip_disagreement(gray, boxes, angles):
        rows = [index[tuple(b)] for b in boxes]
        read.extend(rows)
        return np.where(fails[rows], 1.0, 0.0)

    monkeypatch.setattr(pipeline, "flip_disagreement", flip_disagreement)
    gray = np.zeros((400, 400), np.uint8)
    found = pipeline.verify_any_roll(gray, candidates)
    assert read and len(read) == len(set(read)) and len(read) < (candidates[:, 4] != 0).sum()
    pipeline.roll = RollSearch(turned_threshold=0.6, max_flip_disagreement=None)
    pipeline.verifier.scores = np.where(fails & (candidates[:, 4] != 0), 0.0, scores)  # every candidate checked first
    expected = pipeline.verify_any_roll(gray, candidates)
    assert sorted(map(tuple, found.boxes_xywh)) == sorted(map(tuple, expected.boxes_xywh))
    assert not any(fails[index[tuple(b)]] and a != 0 for b, a in zip(found.boxes_xywh, found.angles_deg))


def test_turned_boxes_refused_are_among_the_rejected_boxes(tiny_model_path, monkeypatch):
    """What "Show rejected boxes" draws: a turned box under the turned threshold (though over the verifier's own)
    and one the flip check refuses (flagged) are rejected boxes too, beside those under the verifier's threshold."""
    candidates = np.array([[0, 0, 60, 60, 0.0], [200, 0, 60, 60, 15.0], [0, 200, 60, 60, -30.0],
                           [200, 200, 60, 60, 45.0]])
    scores = np.array([0.9, 0.58, 0.9, 0.3])  # upright face; under the turned threshold; read apart; verifier's
    pipeline = _pipeline_with_listed_scores(tiny_model_path, candidates, scores, 0.55)
    monkeypatch.setattr(pipeline, "flip_disagreement",
                        lambda gray, boxes, angles: np.where(np.asarray(angles) == -30.0, 1.0, 0.0))
    assert pipeline.turned_threshold == 0.6
    found = pipeline.verify_any_roll(np.zeros((300, 300), np.uint8), candidates, with_rejected=True)
    assert found.boxes_xywh.tolist() == [[0, 0, 60, 60]]
    refused = {a: (s, m) for a, s, m in zip(found.rejected_angles_deg, found.rejected_scores,
                                            found.rejected_by_flip_check, strict=True)}
    assert refused == {15.0: (0.58, False), -30.0: (0.9, True), 45.0: (0.3, False)}


def test_a_refused_box_on_a_face_kept_at_another_angle_hides_no_other_rejected_box(tiny_model_path, monkeypatch):
    """A box refused on a face kept upright is that face, not a rejection; it is left out before the refused boxes
    are thinned to one per place, so a low-scored box it touches (and the kept face does not) is still drawn."""
    candidates = np.array([[100, 100, 100, 100, -15.0],  # on the face, refused by the flip check
                           [120, 120, 60, 60, 0.0],  # the face, kept upright once the turned box is refused
                           [80, 80, 40, 40, 0.0]])  # touches the turned box, not the face's upright one
    pipeline = _pipeline_with_listed_scores(tiny_model_path, candidates, np.array([0.9, 0.8, 0.1]), 0.5)
    monkeypatch.setattr(pipeline, "flip_disagreement", lambda gray, boxes, angles: np.ones(len(boxes)))
    found = pipeline.verify_any_roll(np.zeros((300, 300), np.uint8), candidates, with_rejected=True)
    assert found.boxes_xywh.tolist() == [[120, 120, 60, 60]]
    assert found.rejected_xywh.tolist() == [[80, 80, 40, 40]] and not found.rejected_by_flip_check.any()


def test_a_crop_read_a_moment_ago_is_not_read_again(tiny_model_path, monkeypatch):
    """The flip check and the keypoint step's first pass read a turned face's crop alike: one model call."""
    from core.pipeline import FacePipeline

    pipeline = FacePipeline(tiny_model_path, verifier=False, flip_average=True, recentre=False)
    read = []
    predict = pipeline.predictor.predict_crops
    monkeypatch.setattr(pipeline.predictor, "predict_crops", lambda crops: read.append(len(crops)) or predict(crops))
    crops = np.random.default_rng(0).integers(0, 256, (40, 96, 96), dtype=np.uint8)
    first = pipeline.read_both_ways(crops[:3])
    again = pipeline.read_both_ways(crops[[2, 0, 5]])  # two of them known: only the new one (and its mirror) read
    assert read == [6, 2]
    np.testing.assert_array_equal(again[0][:2], first[0][[2, 0]])
    np.testing.assert_array_equal(again[1][:2], first[1][[2, 0]])
    fresh = predict(np.concatenate([crops[5:6], crops[5:6, :, ::-1]]))
    np.testing.assert_allclose(again[0][2], fresh[0], atol=1e-4)
    # four remembered, oldest first 1, 2, 0, 5 (0 and 2 were asked for again); one too many: crop 1 goes
    pipeline.read_both_ways(crops[6:6 + REMEMBERED_READINGS - 3])
    read.clear()
    pipeline.read_both_ways(crops[0:1])
    assert read == []
    pipeline.read_both_ways(crops[1:2])
    assert read == [2]
    pipeline.forget_recent_readings()
    pipeline.read_both_ways(crops[2:3])
    assert read == [2, 2]
    other = KeypointPredictor(tiny_model_path)  # another model (the webcam's twin): read every time, not kept
    monkeypatch.setattr(other, "predict_crops", lambda crops: read.append(-len(crops)) or predict(crops))
    pipeline.read_both_ways(crops[2:3], other)
    pipeline.read_both_ways(crops[2:3], other)
    assert read == [2, 2, -2, -2]


def test_a_face_kept_from_a_turned_copy_is_read_once_for_the_check_and_once_after_its_eye_line(photos):
    """The flip check's reading of a kept turned face is its eye-line pass: detection and keypoints together
    read its crop twice (check, final pass), not three times."""
    from core.pipeline import FacePipeline

    pipeline = FacePipeline(SHIPPED_MODEL)
    assert pipeline.flip_average and pipeline.refine_roll
    gray = cv2.cvtColor(turn_image(load_image(photos / "james.jpg"), 30.0, border=cv2.BORDER_CONSTANT)[0],
                        cv2.COLOR_BGR2GRAY)
    read = []
    predict = pipeline.predictor.predict_crops
    pipeline.predictor.predict_crops = lambda crops: read.append(len(crops)) or predict(crops)
    found = pipeline.detect(gray)
    assert len(found.boxes_xywh) == 1 and found.angles_deg[0] != 0
    assert sum(read) == 2  # the kept turned box and its mirror
    faces = pipeline.keypoints_for_boxes(gray, found.boxes_xywh, found.angles_deg)
    assert sum(read) == 4 and faces[0].crop.angle_deg != found.angles_deg[0]  # the final pass on the turned crop


def _turned_ellipse_mask(shape, box, angle, grow=1.0):
    (cx, cy), (ax, ay) = overlays.face_ellipse(box, angle)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    a = np.deg2rad(angle)
    u = (xx - cx) * np.cos(a) - (yy - cy) * np.sin(a)  # along the face's own x axis
    v = (xx - cx) * np.sin(a) + (yy - cy) * np.cos(a)  # along its own down
    return (u / (ax * grow)) ** 2 + (v / (ay * grow)) ** 2 <= 1


@pytest.mark.parametrize("method", ["blur", "pixelate"])
def test_the_hidden_region_turns_with_the_face(method):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)
    box, angle = (110, 90, 80, 120), 90.0  # a tall face lying on its side: its ellipse is wide in the image
    out = overlays.hide_faces(image.copy(), [box], [0], method, angles_deg=[angle])
    inner = _turned_ellipse_mask(image.shape, box, angle, 0.9)
    assert out[inner].std() < 0.5 * image[inner].std()
    beyond = ~_turned_ellipse_mask(image.shape, box, angle, 1.7)  # past the feather (wide for this narrow face)
    assert (out[beyond] == image[beyond]).all()
    # at 90 deg the face's "down" is the image's +x: its ellipse reaches 81.6 px sideways and 44.8 px up and down
    assert (out[150, 150 + 70] != image[150, 150 + 70]).any()  # hidden far right of the centre
    assert (out[150 + 78, 150] == image[150 + 78, 150]).all()  # untouched below, where an upright one reaches
    upright = overlays.hide_faces(image.copy(), [box], [0], method)
    assert (upright[150 + 78, 150] != image[150 + 78, 150]).any()


def test_a_rejected_box_is_drawn_turned():
    image = np.zeros((300, 300, 3), np.uint8)
    overlays.draw_rejected_box(image, (100, 100, 100, 100), None, angle_deg=45.0)
    drawn = image.max(2) > 100
    # the turned square's corners lie on the axes through its centre, 70.7 px out; the upright corners stay dark
    assert drawn[149 - 70:149 - 64, 146:153].any() and drawn[146:153, 149 + 64:149 + 71].any()
    assert not drawn[95:105, 95:105].any() and not drawn[195:205, 195:205].any()


def test_rotate_frame_moves_the_labels_with_the_frame():
    gray = np.zeros((100, 140), np.uint8)
    points = np.array([[30.0, 20.0], [110.0, 70.0]])
    for x, y in points.astype(int):
        cv2.circle(gray, (x, y), 2, 255, -1)
    turned, moved = rotate_frame(gray, points, 45.0)
    assert turned.shape[0] > 100 and turned.shape[1] > 140  # enlarged, nothing cut
    for x, y in moved:
        patch = turned[int(y) - 3:int(y) + 4, int(x) - 3:int(x) + 4]
        assert patch.max() > 150
    assert turned[0, 0] == 0  # the new corners are black, not the frame's edge repeated


def test_rotated_evaluation_before_and_after_on_one_person(shared_data):
    from trainer.evaluate import evaluate_rotated, rotated_table

    frames = shared_data / "youtube-faces-68" / "training.zip"
    result = evaluate_rotated(SHIPPED_MODEL, frames, ["Laura_Bush"], [40.0], every=3)
    upright, tilted = result["after"][0.0], result["after"][40.0]
    assert upright["frames"] >= 3 and tilted["frames"] == 2 * upright["frames"]
    assert result["before"][40.0]["detection_rate"] < 0.5  # the upright cascade loses most of them
    assert tilted["detection_rate"] >= 0.9 and tilted["nme"] < 1.2 * upright["nme"]
    table = rotated_table(result)
    assert "+-40" in table and "before detected" in table and "after detected" in table


def test_the_photo_page_finds_a_tilted_face_and_draws_rejected_boxes_turned(photos, tmp_path, monkeypatch):
    """The photo page (headless AppTest) on a sample photo whose face is turned 35 degrees: one face, its
    keypoints table, and the rejected boxes (drawn turned) without an exception."""
    from core.paths import SHIPPED_VERIFIER
    from tests.conftest import REPO

    if not SHIPPED_VERIFIER.is_file():
        pytest.skip("no shipped verifier")
    from streamlit.testing.v1 import AppTest

    turned, _ = turn_image(cv2.imread(str(photos / "james.jpg")), 35.0)
    cv2.imwrite(str(tmp_path / "james_tilted.jpg"), turned)
    monkeypatch.setenv("FKS_SAMPLES_DIR", str(tmp_path))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=180)
    at.switch_page("pages/photo.py").run()
    next(r for r in at.radio if r.label == "Source").set_value("Sample").run()
    next(s for s in at.selectbox if s.label == "Sample photo").set_value("james_tilted.jpg").run()
    assert not at.exception
    assert at.metric[0].value == "1"
    next(c for c in at.checkbox if c.label == "Show rejected boxes").check().run()
    assert not at.exception and "rejected, drawn dashed grey" in " ".join(c.value for c in at.caption)
    slider = next(s for s in at.slider if s.label == "Detector sensitivity")
    slider.set_value(9).run()  # the most sensitive: still this one face (the verifier keeps phantoms out)
    assert not at.exception and at.metric[0].value == "1"
