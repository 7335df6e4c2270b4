"""End-to-end accuracy on full frames: core's detector -> crop -> model -> image pixels.

NME = mean point-to-point error of the 15 points / inter-ocular distance (outer eye corners,
iBUG 36 and 45), averaged over frames where the detector found the labelled face. Frames where it
did not count against the detection rate, not the NME.
"""
from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from core.pipeline import FacePipeline, Recentring
from core.schema import KEYPOINT_NAMES, ibug68_to_kaggle15, interocular_distance
from trainer.frames import FrameSource, best_box, person_of

#: A frame whose NME is above this counts as a failure ("frames above 0.10" in the issues and cards).
FAILURE_NME = 0.10


def evaluate_frames(model_path: str | os.PathLike, frames: str | os.PathLike, people: list[str] | None = None,
                    flip_average: bool | None = None, recentre: Recentring | bool | None = None,
                    csv_path: str | None = None, mean_shape_crop: np.ndarray | list | None = None,
                    int8: bool = False) -> dict:
    """Detection rate, NME (overall, per keypoint) and crop RMSE on the frames of `people` (all if None).

    flip_average / recentre: None = what the model card recommends (what the app does), else forced.
    mean_shape_crop: where re-centring moves a face (default: the card's; trainer.ship passes it before
    the card exists). int8: measure the model's int8 twin (it must exist) instead of the float one.
    """
    source = FrameSource(frames)
    names, points68 = source.read_labels(csv_path)
    wanted = set(people) if people else None
    pipeline = FacePipeline(model_path, flip_average=flip_average, recentre=recentre,
                            mean_shape_crop=mean_shape_crop, int8=int8)
    errors, crop_sq_errors, found, total, seconds = [], [], 0, 0, 0.0
    for name, pts in zip(names, points68):
        if wanted is not None and person_of(name) not in wanted:
            continue
        gray = source.read_gray(name)
        if gray is None:
            continue
        total += 1
        started = time.perf_counter()
        box = best_box(pipeline.detect(gray).boxes_xywh, pts)
        if box is None:
            continue
        face = pipeline.keypoints_for_boxes(gray, [box])[0]
        seconds += time.perf_counter() - started
        found += 1
        truth = ibug68_to_kaggle15(pts)
        errors.append(np.linalg.norm(face.keypoints_px - truth, axis=1) / interocular_distance(truth))
        crop_sq_errors.append(((face.crop.to_crop(face.keypoints_px) - face.crop.to_crop(truth)) ** 2).mean())
    if not errors:
        return {"frames": total, "detected": 0, "detection_rate": 0.0}
    errors = np.array(errors)
    return {
        "frames": total,
        "detected": found,
        "detection_rate": round(found / max(total, 1), 4),
        "nme": round(float(errors.mean()), 4),
        "nme_median_frame": round(float(np.median(errors.mean(1))), 4),
        "frames_above_0.10": round(float((errors.mean(1) > FAILURE_NME).mean()), 4),
        "per_keypoint_nme": {n: round(float(v), 4) for n, v in zip(KEYPOINT_NAMES, errors.mean(0))},
        "crop_rmse_px": round(float(np.sqrt(np.mean(crop_sq_errors))), 3),
        "ms_per_face": round(1000 * seconds / found, 2),
        "flip_average": pipeline.flip_average,
        "recentre": dataclasses.asdict(pipeline.recentre) if pipeline.recentre else None,
    }
