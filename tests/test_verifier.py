"""The face verifier: its plumbing (any verifier file, or none), its training, and the shipped one's figures.

The shipped verifier's tests use the held-out TEST people of the keypoint model's card (never used to
train or choose anything) and the sample photos; they skip cleanly when ../shared/data is absent.
"""
import io
import json
import logging

import cv2
import numpy as np
import pytest

from core.card import card_path_for
from core.detector import RollSearch
from core.images import load_image
from core.model import ModelError
from core.paths import SHIPPED_MODEL, SHIPPED_VERIFIER
from core.pipeline import FacePipeline
from core.verifier import FaceVerifier, load_verifier
from trainer import events as ev
from trainer import verifier as v
from trainer.export import save_model


def test_threshold_keeps_the_requested_share_of_faces():
    scores = np.linspace(0, 1, 1000)
    t = v.threshold_for_recall(scores, 0.997)
    assert (scores >= t).mean() >= 0.997 and (scores >= t).sum() == 997
    assert v.threshold_for_recall(np.array([0.2, 0.9]), 0.997) == 0.2  # two faces: keep both


def test_synthetic_negatives_are_varied_face_free_images():
    images = v.synthetic_negatives(50, np.random.default_rng(0))
    assert images.shape == (50, 96, 96) and images.dtype == np.uint8
    assert len({int(i.std()) for i in images}) > 10  # not one texture fifty times


@pytest.fixture(scope="module")
def constant_verifier_path(tmp_path_factory):
    """A verifier that scores every crop 0.5 (its last layer zeroed); each test writes its card (threshold) beside it."""
    path = tmp_path_factory.mktemp("verifier") / "v.keras"
    model = v.build_verifier((4, 8))
    model.get_layer("face").set_weights([np.zeros_like(w) for w in model.get_layer("face").get_weights()])
    save_model(model, path)
    return path


@pytest.mark.parametrize("contrast_norm", [True, False])
def test_a_contrast_normalised_verifier_scores_a_face_in_a_darker_frame_alike(tmp_path, contrast_norm):
    """The normalisation is a layer of the model: the ONNX twin the app runs has it too. A brightness shift is
    cancelled exactly; a change of contrast is not (the layer's epsilon is a part of a crop's variance)."""
    path = tmp_path / "v.keras"
    save_model(v.build_verifier((4, 8), contrast_norm=contrast_norm), path)
    lit = np.random.default_rng(3).integers(60, 256, (8, 96, 96), dtype=np.uint8)
    darker = lit - 60
    scores = FaceVerifier(path).score_crops(np.concatenate([lit, darker]))
    assert np.allclose(scores[:8], scores[8:], rtol=0, atol=1e-5) == contrast_norm


def _with_threshold(path, threshold):
    card_path_for(path).write_text(json.dumps({"threshold": threshold}))
    return FaceVerifier(path)


def test_detect_returns_rejected_boxes_with_their_scores_on_request(photos, tiny_model_path, constant_verifier_path):
    image = load_image(photos / "obamas4.jpg")
    everything = FacePipeline(tiny_model_path, verifier=False).detect(image)
    assert everything.scores is None and len(everything.boxes_xywh) == 2
    strict = FacePipeline(tiny_model_path, verifier=_with_threshold(constant_verifier_path, 1.01))
    rejected = strict.detect(image, with_rejected=True)
    assert len(rejected.boxes_xywh) == 0 and len(rejected.rejected_xywh) == 2
    assert ((rejected.rejected_scores >= 0) & (rejected.rejected_scores <= 1)).all()
    assert strict.find_faces(image) == []
    lenient = FacePipeline(tiny_model_path, verifier=_with_threshold(constant_verifier_path, 0.0))
    assert len(lenient.detect(image, with_rejected=True).boxes_xywh) == 2


def test_missing_or_wrong_verifier_files_keep_every_box_with_a_log_message(photos, tiny_model_path, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="core.verifier"):
        assert load_verifier(tmp_path / "absent.keras") is None
        assert load_verifier(tiny_model_path) is None  # a keypoint model is not a verifier
    assert "not used" in caplog.text and "absent.keras" in caplog.text
    with pytest.raises(ModelError, match="needs 1"):
        FaceVerifier(tiny_model_path)
    pipeline = FacePipeline(tiny_model_path, verifier=tmp_path / "absent.keras")
    assert pipeline.verifier is None
    assert len(pipeline.find_faces(load_image(photos / "obamas4.jpg"))) == 2


def test_webcam_runs_the_verifier_on_detection_frames_only(photos, tiny_model_path, constant_verifier_path):
    from core.live import LiveProcessor, LiveSettings

    verifier = _with_threshold(constant_verifier_path, 0.0)
    frame_scored, frame_now = [], [0]
    score_boxes = verifier.score_boxes
    verifier.score_boxes = lambda gray, boxes, *angles: frame_scored.append(frame_now[0]) or score_boxes(gray, boxes, *angles)
    frame = cv2.resize(load_image(photos / "obamas4.jpg"), (640, 422))
    # The frame-path detector (detection every 5th frame) makes the frames exact; the background worker
    # goes through the same LiveProcessor._detect, so it also scores only the frames it detects on.
    processor = LiveProcessor(FacePipeline(tiny_model_path, verifier=verifier),
                              LiveSettings(effect="none", mirror=False, detect_every=5, background_detection=False))
    for i in range(10):
        frame_now[0] = i
        processor.process(frame, now=i / 30)
    assert set(frame_scored) == {0, 5} and processor.stats().faces == 2


#: The made-up cache's 240 crops: person p0..p11 and kind (0 face, 1 detector box without a face, 2 random crop)
MADE_UP_PEOPLE = np.array([f"p{i % 12}" for i in range(240)])
MADE_UP_KIND = np.arange(240) % 3


def _made_up_cache(tmp_path, angle: np.ndarray | None = None):
    """(keypoint card, mined cache) in tmp_path: crops of MADE_UP_PEOPLE / MADE_UP_KIND (faces darker, something to
    learn), validation people p0 and p1, test person p2."""
    crops = np.random.default_rng(0).integers(0, 255, (240, 96, 96), dtype=np.uint8)
    crops[MADE_UP_KIND == 0] //= 2
    v.MinedCrops(crops, np.array([f"{p}_{i:02d}.jpg" for i, p in enumerate(MADE_UP_PEOPLE)]), MADE_UP_PEOPLE,
                 np.tile([10.0, 10.0, 50.0, 50.0], (240, 1)), np.where(MADE_UP_KIND == 0, 0.6, 0.0), np.zeros(240),
                 np.where(MADE_UP_KIND == 2, 0, 5), np.zeros(240) if angle is None else angle).save(tmp_path / "mined.npz")
    keypoint_card = tmp_path / "kp.keras"
    card_path_for(keypoint_card).write_text(json.dumps({"data": {"val_people": ["p0", "p1"], "test_people": ["p2"]}}))
    return keypoint_card, tmp_path / "mined.npz"


def test_training_writes_a_verifier_and_a_card_chosen_on_validation_people(tmp_path):
    """A tiny run on made-up crops: the files, the split and the threshold rule, not accuracy."""
    keypoint_card, mined = _made_up_cache(tmp_path)
    config = v.VerifierConfig(widths=(4, 8), epochs=2, synthetic=20)
    events, bar = [], io.StringIO()
    card = v.train_verifier("unused.zip", keypoint_card, tmp_path / "face-verifier.keras", mined,
                            config, log=lambda line: None, bus=ev.EventBus([events.append, ev.ProgressBar(bar)]))
    kinds = [e.NAME for e in events if not isinstance(e, ev.BatchProgress)]
    assert kinds == [ev.RUN_START, ev.STAGE_START, ev.EPOCH_END, ev.EPOCH_END, ev.STAGE_END, ev.RUN_END]
    epochs = [e for e in events if isinstance(e, ev.EpochEnd)]
    assert [e.epoch for e in epochs] == [0, 1]
    assert all(np.isfinite(e.val_loss) and "val_auc" in e.metrics for e in epochs)
    assert epochs[1].lr < epochs[0].lr < config.learning_rate  # the cosine schedule runs inside the one fit
    assert sum(isinstance(e, ev.BatchProgress) for e in events) == 2 * epochs[0].steps
    assert "stage 1/1 verifier epoch 2/2" in bar.getvalue() and "val_auc" in bar.getvalue()
    assert (tmp_path / "face-verifier.onnx").is_file()
    written = json.loads((tmp_path / "face-verifier.json").read_text())
    assert written["threshold"] == card.threshold and written["split"]["test_people"] == ["p2"]
    assert written["metrics"]["val"]["recall"] >= 0.997  # the rule, on validation people
    assert written["data"]["train"]["face"] == 60  # people p3..p11, a third of their crops
    assert FaceVerifier(tmp_path / "face-verifier.keras").threshold == card.threshold


def test_excluded_people_and_turned_boxes_stay_out_of_training_unless_asked(tmp_path):
    """One cache serves verifiers of both kinds, and a verifier can be judged on training people none of them saw."""
    angle = np.where(np.arange(240) % 5 == 0, 30.0, 0.0)  # a fifth of the boxes from a turned copy
    keypoint_card, mined = _made_up_cache(tmp_path, angle)
    config = v.VerifierConfig(widths=(4,), epochs=1, synthetic=10)

    def train_faces(keep):
        return sum((MADE_UP_KIND == 0) & keep & ~np.isin(MADE_UP_PEOPLE, ["p0", "p1", "p2"]))

    def trained(name, **kwargs):
        lines = []
        card = v.train_verifier("unused.zip", keypoint_card, tmp_path / name / "v.keras", mined, config,
                                log=lines.append, **kwargs)
        return card, " ".join(lines)

    upright, lines = trained("upright", exclude_people=frozenset({"p3", "p4"}))
    assert upright.data["train"]["face"] == train_faces((angle == 0) & ~np.isin(MADE_UP_PEOPLE, ["p3", "p4"]))
    assert upright.split["excluded_from_training"] == ["p3", "p4"] and "left out" in lines
    turned, _ = trained("turned", roll=RollSearch())
    assert turned.data["train"]["face"] == train_faces(np.ones(240, bool)) and "excluded_from_training" not in turned.split
    with pytest.raises(ValueError, match="validation or test"):
        trained("bad", exclude_people=frozenset({"p0"}))


# -- the shipped verifier ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shipped_pipeline():
    if not SHIPPED_VERIFIER.is_file() or not SHIPPED_MODEL.is_file():
        pytest.skip("no shipped verifier/model")
    pipeline = FacePipeline(SHIPPED_MODEL)
    assert pipeline.verifier is not None
    return pipeline


@pytest.fixture(scope="module")
def frames(shared_data):
    return shared_data / "youtube-faces-68" / "training.zip"


@pytest.mark.shipped_model
def test_card_records_threshold_precision_and_recall(shipped_pipeline):
    card = shipped_pipeline.verifier.card
    assert card.split["test_people"] == sorted(shipped_pipeline.predictor.card.data.test_people)
    assert card.metrics["val"]["recall"] >= 0.997
    assert 0 < card.threshold < 1 and card.threshold == shipped_pipeline.verifier.threshold
    for split in ("val", "test"):
        assert {"recall", "precision_all_sensitivities", "precision_default_sensitivity"} <= set(card.metrics[split])


@pytest.mark.shipped_model
def test_held_out_test_people_one_box_per_face_no_phantoms_faces_kept(shipped_pipeline, frames):
    """Every extra box on these frames was looked at (trainer.verifier.HELD_OUT_BACKGROUND_FACES: none is a
    real face). Faces kept: of the labelled faces the detector boxes (it misses 2 of 348 frames on its own)."""
    test_people = set(shipped_pipeline.predictor.card.data.test_people)
    report = v.phantom_report(shipped_pipeline, frames, test_people)
    detector_alone = v.phantom_report(FacePipeline(SHIPPED_MODEL, verifier=False), frames, test_people)
    summary, before = report.summary(), detector_alone.summary()
    print(f"\ntest people, detector alone: {before}\nwith the verifier: {summary}")
    assert summary["frames"] > 300
    assert report.faces_with_two_boxes == [] and detector_alone.faces_with_two_boxes == []  # NMS in the detector
    assert summary["phantom_rate"] <= 0.003, report.phantom_frames
    assert before["phantom_rate"] > 0.003  # what the verifier is for
    assert report.faces_kept / detector_alone.faces_kept >= 0.995
    assert summary["faces_kept"] >= 0.99


@pytest.mark.shipped_model
@pytest.mark.parametrize("name, count", [("obamas4.jpg", 2), ("james.jpg", 1), ("mona_lisa.jpg", 1),
                                         ("streetview_no_face.jpg", 0), ("fawzia.jpg", 1)])
def test_sample_photos_face_counts(shipped_pipeline, photos, name, count):
    assert len(shipped_pipeline.detect(load_image(photos / name)).boxes_xywh) == count


def _group_picture(frames, people: set[str], tile_px: int = 80, cell_px: int = 120):
    """A dozen small faces (one frame of each of 12 held-out people, faces the detector finds in their own
    frame) pasted with soft edges on a textured background, as in a group photo; their boxes on it."""
    from core.detector import FaceDetector
    from trainer.frames import FrameSource, best_box, person_of

    source = FrameSource(frames)
    names, points = source.read_labels()
    detector = FaceDetector()
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.normal(128, 40, (3 * cell_px + 40, 4 * cell_px + 40)).astype(np.float32), (0, 0), 6)
    canvas = np.clip(texture, 0, 255)
    feather = np.zeros((tile_px, tile_px), np.float32)
    feather[6:-6, 6:-6] = 1
    feather = cv2.GaussianBlur(feather, (0, 0), 3)
    faces, used = [], set()
    for name, pts in zip(names, points):
        person = person_of(name)
        if person not in people or person in used or len(faces) == 12:
            continue
        gray = source.read_gray(name)
        if best_box(detector.detect(gray), pts) is None:
            continue
        label = v.label_box(pts)
        side = 1.6 * max(label[2], label[3])
        cx, cy = label[:2] + label[2:] / 2
        crop = cv2.getRectSubPix(gray, (int(side), int(side)), (float(cx), float(cy)))
        tile = cv2.resize(crop, (tile_px, tile_px), interpolation=cv2.INTER_AREA).astype(np.float32)
        row, col = divmod(len(faces), 4)
        x0, y0 = 20 + col * cell_px + (cell_px - tile_px) // 2, 20 + row * cell_px + (cell_px - tile_px) // 2
        region = canvas[y0:y0 + tile_px, x0:x0 + tile_px]
        canvas[y0:y0 + tile_px, x0:x0 + tile_px] = feather * tile + (1 - feather) * region
        scale = tile_px / int(side)
        faces.append(np.array([x0 + (label[0] - cx) * scale + tile_px / 2, y0 + (label[1] - cy) * scale + tile_px / 2,
                               label[2] * scale, label[3] * scale]))
        used.add(person)
    return cv2.cvtColor(canvas.astype(np.uint8), cv2.COLOR_GRAY2BGR), faces


@pytest.mark.shipped_model
def test_group_picture_of_a_dozen_small_faces_keeps_every_face_and_no_phantom(shipped_pipeline, frames, tmp_path):
    from core.geometry import box_iou

    image, faces = _group_picture(frames, set(shipped_pipeline.predictor.card.data.test_people))
    assert len(faces) == 12
    detections = shipped_pipeline.detect(image, with_rejected=True)
    cv2.imwrite(str(tmp_path / "group.png"), image)
    for face in faces:  # every face: exactly one box
        assert sum(box_iou(b, face) >= v.FACE_IOU for b in detections.boxes_xywh) == 1, (face, detections)
    for box in detections.boxes_xywh:  # no box away from the faces
        assert max(box_iou(box, face) for face in faces) >= v.FACE_IOU, (box, detections)
