"""The webcam engine on a tilting head: the track's crop turns with the face, the track lives on its own
crop's face score while the cascade cannot see the face, and what is drawn (artwork, blur, pixelation)
turns with the face."""
import cv2
import numpy as np
import pytest

from core.live import LiveProcessor, LiveSettings
from core.pipeline import FacePipeline, render
from core.schema import INDEX
from tests.helpers import video_frames

EYES = [INDEX["left_eye_center"], INDEX["right_eye_center"]]
FACE_PARTS = [INDEX[n] for n in ("left_eye_center", "right_eye_center", "nose_tip", "mouth_center_bottom_lip")]


@pytest.fixture(scope="module")
def face_frame(shared_data):
    """A 640x480 frame of the shared webcam video (one upright face)."""
    return video_frames(shared_data / "video" / "frontal_face_320x240.mp4", limit=31)[30]


@pytest.fixture(scope="module")
def pipeline(app_model_path):
    return FacePipeline(app_model_path)


def turned(frame: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """The frame turned about its centre (counter-clockwise as shown for positive degrees) and the 2x3 matrix."""
    h, w = frame.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), degrees, 1.0)
    return cv2.warpAffine(frame, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE), m


def major_axis_from_vertical(mask: np.ndarray) -> float:
    """Degrees (counter-clockwise as shown) from the image's vertical to the long axis of a blob."""
    m = cv2.moments(mask.astype(np.uint8), binaryImage=True)
    theta = 0.5 * np.degrees(np.arctan2(2 * m["mu11"], m["mu20"] - m["mu02"]))  # long axis from +x, y down
    return float((-theta) % 180 - 90)  # as shown (y up), measured from vertical


class CascadeGoesBlind:
    """The cascade (on the image and on every turned copy) finding nothing once `on`, as when a head has turned
    past what it reads: the track must then live on its own crop."""

    def __init__(self, pipeline: FacePipeline):
        self.real, self.calls, self.on = pipeline.detector.detect, 0, False

    def __call__(self, gray, settings=None):
        if not self.on:
            return self.real(gray, settings)
        self.calls += 1
        return np.zeros((0, 4), int)


@pytest.mark.parametrize("background", [False, True], ids=["frame path", "detection thread"])
def test_a_head_tilting_to_40_degrees_keeps_its_track_and_its_crop_turns_with_it(face_frame, pipeline, background,
                                                                                 monkeypatch):
    truth = pipeline.find_faces(face_frame)[0].keypoints_px  # the photo path on the upright frame
    blind = CascadeGoesBlind(pipeline)
    monkeypatch.setattr(pipeline.detector, "detect", blind)
    processor = LiveProcessor(pipeline, LiveSettings(effect="none", mirror=False, background_detection=background,
                                                     detection_process=False, grace_s=0.5))
    sweep = [*np.linspace(0, 40, 40), *[40.0] * 45]  # 1.3 s to 40 degrees, then 1.5 s held there (3x the grace)
    for i, degrees in enumerate(sweep):
        frame, m = turned(face_frame, degrees)
        processor.process(frame, now=i / 30)
        blind.on = True  # the first frame found the face
        if processor._worker is not None:
            assert processor._worker.wait_idle(30)
    assert blind.calls >= 12  # the cascade was asked all along and found nothing after the first frame
    faces = processor.snapshot().faces
    assert len(faces) == 1
    expected = truth @ m[:, :2].T + m[:, 2]
    eye_distance = np.linalg.norm(expected[EYES[0]] - expected[EYES[1]])
    error = np.linalg.norm(faces[0].keypoints_px - expected, axis=1)
    assert error.mean() < 0.15 * eye_distance, error  # on the turned face, not left behind
    assert faces[0].crop.angle_deg == pytest.approx(40, abs=7)  # the model read an upright face
    blank = np.full_like(face_frame, 110)
    for i in range(len(sweep), len(sweep) + 40):  # the face leaves: its crop no longer looks like one
        processor.process(blank, now=i / 30)
        if processor._worker is not None:
            assert processor._worker.wait_idle(30)
    assert processor.stats().faces == 0
    processor.close()


@pytest.fixture(scope="module")
def tilted_faces(face_frame, pipeline):
    """A face followed from upright to 35 degrees by the webcam engine, the truth (the upright photo-path
    keypoints turned with the frame), and the turned frame."""
    truth = pipeline.find_faces(face_frame)[0].keypoints_px
    processor = LiveProcessor(pipeline, LiveSettings(effect="none", mirror=False, background_detection=False))
    for i, degrees in enumerate([*np.linspace(0, 35, 35), *[35.0] * 10]):
        frame, m = turned(face_frame, degrees)
        processor.process(frame, now=i / 30)
    faces = processor.snapshot().faces
    assert len(faces) == 1
    return faces, truth @ m[:, :2].T + m[:, 2], frame


@pytest.mark.parametrize("effect", ["blur", "pixelate"])
def test_the_hidden_region_turns_with_the_face(tilted_faces, effect):
    faces, expected, frame = tilted_faces
    # noise, so every hidden pixel changes; larger than the frame, so the face's ellipse is not cut by its edges
    texture = np.random.default_rng(0).integers(0, 256, (1000, 1000, 3), dtype=np.uint8)
    hidden = np.abs(render(texture, faces, effect).astype(int) - texture).max(axis=2) > 40
    assert major_axis_from_vertical(hidden) == pytest.approx(35, abs=6)  # the face's long axis, turned
    inside = [hidden[int(round(y)), int(round(x))] for x, y in expected[FACE_PARTS]]
    assert all(inside), inside  # eyes, nose and mouth where the turned face has them are hidden
    upright = [type(faces[0])(faces[0].box_xywh, faces[0].keypoints_px, type(faces[0].crop)(
        faces[0].crop.left, faces[0].crop.top, faces[0].crop.side, faces[0].crop.size))]  # the same face, roll 0
    still_upright = np.abs(render(texture, upright, effect).astype(int) - texture).max(axis=2) > 40
    assert major_axis_from_vertical(still_upright) == pytest.approx(0, abs=3)


def test_sunglasses_lie_along_the_turned_eye_line(tilted_faces):
    faces, expected, frame = tilted_faces
    drawn = np.abs(render(frame, faces, "sunglasses").astype(int) - frame).max(axis=2) > 40
    eye_line = expected[EYES[0]] - expected[EYES[1]]  # image x right, y down
    along = np.degrees(np.arctan2(-eye_line[1], eye_line[0]))
    assert major_axis_from_vertical(drawn) + 90 == pytest.approx(along % 180, abs=8)
    ys, xs = np.nonzero(drawn)
    centre = expected[EYES].mean(axis=0)
    assert np.hypot(xs.mean() - centre[0], ys.mean() - centre[1]) < 0.3 * np.linalg.norm(eye_line)


def test_a_mirrored_snapshot_keeps_the_turned_face_angle(face_frame, pipeline):
    """The webcam shows the frame mirrored and names the points the person's way; the snapshot's faces (and
    its CSV) keep the box's angle as shown: a head turned 35 deg counter-clockwise shows turned clockwise."""
    from core.export import faces_dataframe

    processor = LiveProcessor(pipeline, LiveSettings(effect="none", mirror=True, background_detection=False))
    for i, degrees in enumerate([*np.linspace(0, 35, 35), *[35.0] * 10]):
        processor.process(turned(face_frame, degrees)[0], now=i / 30)
    (face,) = processor.snapshot().faces
    assert face.angle_deg == pytest.approx(-35, abs=7) and face.angle_deg == face.crop.angle_deg
    assert faces_dataframe([face])["box_angle_deg"].iloc[0] == pytest.approx(-35, abs=7)
    processor.close()
