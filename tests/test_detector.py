"""One box per face: NMS across scales and the containment rule, on synthetic boxes and real frames."""
import numpy as np

from core.detector import FaceDetector, group_windows, one_box_per_face
from core.geometry import box_iou


def test_overlapping_boxes_keep_the_best_scored_one():
    boxes = np.array([[10, 10, 100, 100], [20, 15, 95, 95], [300, 10, 100, 100]])
    keep = one_box_per_face(boxes, np.array([5.0, 30.0, 8.0]))
    assert sorted(keep.tolist()) == [1, 2]


def test_a_box_mostly_inside_a_larger_one_is_dropped():
    # the small box is all inside the big one, IoU only 0.16: NMS alone would keep both
    boxes = np.array([[0, 0, 100, 100], [30, 50, 40, 40]])
    assert box_iou(boxes[0], boxes[1]) < 0.3
    assert one_box_per_face(boxes, np.array([3.0, 50.0])).tolist() == [0]


def test_faces_side_by_side_and_a_half_overlap_are_all_kept():
    boxes = np.array([[0, 0, 50, 50], [52, 0, 50, 50], [104, 5, 45, 45], [30, 40, 50, 50]])
    # the last box overlaps two others by under a third of its area: a separate face (a group photo row)
    assert sorted(one_box_per_face(boxes).tolist()) == [0, 1, 2, 3]


def test_no_boxes_and_order_largest_first():
    assert one_box_per_face(np.zeros((0, 4))).tolist() == []
    keep = one_box_per_face(np.array([[0, 0, 10, 10], [100, 100, 40, 40], [200, 0, 20, 20]]))
    assert keep.tolist() == [1, 2, 0]


#: Training-people frames where the cascade returns two boxes on the one face (two scales or two
#: positions that its grouping does not merge): found by scanning the frames with detectMultiScale2.
DOUBLE_BOX_FRAMES = ["Orlando_Bloom_02.jpg", "Connie_Chung_22.jpg", "Queen_Rania_50.jpg", "Kyle_Shewfelt_02.jpg",
                     "Wayne_Newton_10.jpg", "Jacqueline_Gold_31.jpg", "Mack_Brown_42.jpg"]


def test_windows_in_any_order_give_the_same_box():
    """Two groups of three windows, 15 px apart: as likely a face as each other (same neighbours, same size) and
    overlapping past the NMS threshold, so one is kept; OpenCV's threads hand the windows over in any order."""
    windows = [[10, 10, 50, 50], [11, 10, 50, 50], [10, 11, 50, 50], [25, 10, 50, 50], [26, 10, 50, 50], [25, 11, 50, 50]]
    kept = {tuple(map(tuple, group_windows([windows[i] for i in order], 2)))
            for order in np.random.default_rng(0).permuted(np.tile(np.arange(6), (20, 1)), axis=1)}
    assert len(kept) == 1 and len(next(iter(kept))) == 1


def test_real_frames_with_two_boxes_on_one_face_get_one(shared_data):
    from trainer.frames import FrameSource
    from trainer.verifier import label_box

    source = FrameSource(shared_data / "youtube-faces-68" / "training.zip")
    names, points = source.read_labels()
    where = {n: i for i, n in enumerate(names)}
    detector = FaceDetector()
    s = detector.settings
    for name in DOUBLE_BOX_FRAMES:
        gray = source.read_gray(name)
        raw, _ = detector._cascade.detectMultiScale2(gray, s.scale_factor, s.min_neighbors, minSize=(20, 20))
        assert len(raw) == 2, name  # the raw cascade's double box
        boxes = detector.detect(gray)
        assert len(boxes) == 1, name
        assert box_iou(boxes[0], label_box(points[where[name]])) > 0.3, name  # the kept one is the face
