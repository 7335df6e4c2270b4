"""The face verifier's data side on real frames (when ../shared is present): mining detector boxes and random
squares, contact sheets to look at, and the phantom report of the shipped pipeline (`python -m trainer phantoms`)."""
import dataclasses
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from core.card import read_card
from core.paths import SHIPPED_MODEL
from tests.conftest import REPO
from tests.helpers import small_68_zip
from trainer import verifier as v
from trainer.importer import person_of

#: Two validation people of the shipped model; one frame of Lindsey Graham has a real face in the background.
PEOPLE = ["Abdullah_Gul", "Lindsey_Graham"]


@pytest.fixture(scope="module")
def frames(shared_data, tmp_path_factory):
    if not SHIPPED_MODEL.is_file() or not set(PEOPLE) <= set(read_card(SHIPPED_MODEL).data.val_people or []):
        pytest.skip("the shipped model's card does not name these validation people")
    return small_68_zip(shared_data / "youtube-faces-68" / "training.zip",
                        tmp_path_factory.mktemp("frames") / "val2.zip", people=PEOPLE)


@pytest.fixture(scope="module")
def mined(frames, tmp_path_factory):
    path = tmp_path_factory.mktemp("mined") / "mined.npz"
    seen = []
    crops = v.mine(frames[0], path, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (frames[1], frames[1]) and len(seen) == frames[1]
    return crops, path


def test_mining_finds_each_labelled_face_and_random_squares_that_hold_none(frames, mined):
    crops, path = mined
    n_frames = frames[1]
    assert crops.crops.shape[1:] == (96, 96) and crops.crops.dtype == np.uint8
    assert len({len(crops.crops), len(crops.frames), len(crops.people), len(crops.boxes), len(crops.iou)}) == 1
    assert set(crops.people) == set(PEOPLE) and all(person_of(f) == p for f, p in zip(crops.frames, crops.people))
    detector = crops.strictness > 0
    faces = detector & (crops.iou >= v.FACE_IOU)
    assert len(set(crops.frames[faces])) >= n_frames - 1  # the cascade finds the labelled face in (nearly) every frame
    # detector boxes of one frame are distinct; random squares never overlap the face much
    random = crops.strictness == 0
    assert random.sum() >= n_frames and (crops.iou[random] < v.FACE_IOU / 2).all()
    again = v.MinedCrops.load(path)
    assert np.array_equal(again.crops, crops.crops) and np.array_equal(again.boxes, crops.boxes)


def test_mining_again_takes_the_earlier_detector_boxes_as_they_are(frames, mined, tmp_path):
    crops, _ = mined
    earlier = dataclasses.replace(crops, boxes=crops.boxes + 3.0)  # not what the cascade would find now
    reused = v.mine(frames[0], tmp_path / "again.npz", reuse=earlier)
    keep = crops.strictness > 0
    assert np.array_equal(reused.boxes[reused.strictness > 0], earlier.boxes[keep])
    assert np.array_equal(reused.strictness[reused.strictness > 0], crops.strictness[keep])


def test_mining_turned_copies_reads_each_box_as_the_any_roll_search_does(frames, mined, tmp_path):
    from core.detector import FaceDetector, RollSearch, search_copies
    from core.geometry import crop_from_box
    from trainer.frames import FrameSource

    upright, _ = mined
    roll = RollSearch()
    turned = v.mine(frames[0], tmp_path / "turned.npz", roll=roll)
    again = v.MinedCrops.load(tmp_path / "turned.npz")
    assert np.array_equal(again.angle, turned.angle) and np.array_equal(again.crops, turned.crops)
    assert set(np.unique(turned.angle)) == {0.0, *roll.angles_deg}
    flat = turned.angle == 0  # the upright part is the upright mining, box for box
    assert np.array_equal(turned.boxes[flat & (turned.strictness > 0)], upright.boxes[upright.strictness > 0])
    # at the search's own sensitivity, a copy's boxes are the ones the search's copies give for that angle (the
    # second look around their weak boxes is not mined)
    source = FrameSource(frames[0])
    names, points68 = source.read_labels()
    name = names[0]
    gray = source.read_gray(name)
    k = 5 - roll.sensitivity_boost
    searched, _ = search_copies(FaceDetector(), gray, roll=roll)
    for angle in roll.angles_deg:
        mask = (turned.frames == name) & (turned.angle == angle) & (turned.strictness >= k)
        expected = searched[searched[:, 4] == angle, :4]
        assert sorted(map(tuple, np.round(turned.boxes[mask], 3))) == sorted(map(tuple, np.round(expected, 3)))
    # each crop is the box's de-rotated crop; a face found on a copy turned by a reads with the frame's roll - a
    i = int(np.flatnonzero(turned.angle != 0)[0])
    box, angle = turned.boxes[i], float(turned.angle[i])
    frame_gray = source.read_gray(str(turned.frames[i]))
    assert np.array_equal(turned.crops[i], crop_from_box(box, angle_deg=angle).extract(frame_gray))
    label = dict(zip(names, points68))
    faces = np.flatnonzero(v.is_face(turned) & (turned.angle != 0))
    assert len(faces) >= frames[1]  # the labelled face is found on turned copies too
    misses, offsets = [], []
    for j in faces:
        p = label[str(turned.frames[j])]
        crop = crop_from_box(turned.boxes[j], angle_deg=float(turned.angle[j]))
        eyes_frame, eyes_crop = p[45] - p[36], crop.to_crop(p[45]) - crop.to_crop(p[36])
        roll_frame = np.degrees(np.arctan2(-eyes_frame[1], eyes_frame[0]))
        roll_crop = np.degrees(np.arctan2(-eyes_crop[1], eyes_crop[0]))
        misses.append(abs(roll_crop - (roll_frame - turned.angle[j])))
        offsets.append(np.abs(crop.to_crop(p).mean(0) - 47.5).max())
    assert max(misses) < 1e-6
    assert np.median(offsets) < 12 and max(offsets) < 48  # the face sits in its crop (IoU 0.3 lets a few off centre)
    # overlaps are the turned box's own with the labelled face's box as it is (a box on a corner of the face is no
    # face): the same IoU counted on a grid of points over both squares, each box's corners taken from its crop's
    # geometry (boxes as the detector gives them: a box (x, y, w, h) spans x..x+w, half a pixel right of and below
    # where CropTransform, which counts pixel centres, puts it)
    for j in faces[:: max(1, len(faces) // 8)]:
        p = label[str(turned.frames[j])]
        lo, hi = p.min(0), p.max(0)
        square = crop_from_box(turned.boxes[j], margin=1.0, shift_down=0.0, angle_deg=float(turned.angle[j]))
        corners = square.corners() + 0.5
        start, stop = np.minimum(lo, corners.min(0)), np.maximum(hi, corners.max(0))
        grid = np.stack(np.meshgrid(*(np.arange(a, b, 0.1) for a, b in zip(start, stop))), -1).reshape(-1, 2)
        in_label = (grid >= lo).all(1) & (grid < hi).all(1)
        inside = square.to_crop(grid - 0.5)  # the box is the whole crop at margin 1
        in_box = ((inside >= -0.5) & (inside < square.size - 0.5)).all(1)
        counted = (in_label & in_box).sum() / (in_label | in_box).sum()
        assert abs(turned.iou[j] - counted) < 0.004, (j, turned.iou[j], counted)


def test_contact_sheets_show_every_chosen_crop(mined, tmp_path):
    crops, _ = mined
    mask = crops.strictness == 0
    sheets = v.contact_sheets(crops, mask, tmp_path / "sheets", per_sheet=12, cols=4, thumb=32)
    assert len(sheets) == -(-int(mask.sum()) // 12)
    first = cv2.imread(str(sheets[0]), cv2.IMREAD_GRAYSCALE)
    assert first.shape == (3 * (32 + 24), 4 * 32) and (first < 255).mean() > 0.3


def _trainer(args, tmp_path):
    return subprocess.run([sys.executable, "-m", "trainer", *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "FKS_RUNS_DIR": str(tmp_path / "runs")})


def test_phantoms_command_reports_the_shipped_pipeline_on_validation_people(frames, tmp_path):
    out = _trainer(["phantoms", "--frames", frames[0], "--people", "val", "--sheets", tmp_path / "extra"], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert report["frames"] == frames[1] and report["faces_kept"] >= 0.9 and report["verifier"] is True
    assert report["phantom_frames"] == len(report["phantom_frame_names"])
    sheets = sorted((tmp_path / "extra").glob("extra-*.png"))
    assert len(sheets) == -(-len(report["extra_boxes"]) // 20)  # 20 frames a sheet, each extra box shown
    plain = json.loads(_trainer(["phantoms", "--frames", frames[0], "--no-verifier"], tmp_path).stdout)
    assert plain["verifier"] is False and len(plain["extra_boxes"]) >= len(report["extra_boxes"])


def test_train_verifier_sheets_mines_once_and_draws_the_hard_negatives(frames, tmp_path):
    mined_path = tmp_path / "cache" / "mined.npz"
    out = _trainer(["train-verifier", "--frames", frames[0], "--mined", mined_path, "--sheets", tmp_path / "hard"], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert mined_path.is_file()
    n_sheets = len(list((tmp_path / "hard").glob("sheet-*.png")))
    assert out.stdout.strip() == f"wrote {n_sheets} contact sheets of hard negatives to {tmp_path / 'hard'}"
