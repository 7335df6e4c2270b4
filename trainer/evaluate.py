"""End-to-end accuracy on full frames: core's detector -> crop -> model -> image pixels.

NME = mean point-to-point error of the 15 points / inter-ocular distance (outer eye corners,
iBUG 36 and 45), averaged over frames where the detector found the labelled face. Frames where it
did not count against the detection rate, not the NME.
"""
from __future__ import annotations

import dataclasses
import os
import time

import cv2
import numpy as np

from core.detector import RollSearch
from core.geometry import turn_image
from core.pipeline import FacePipeline, Recentring
from core.schema import KEYPOINT_NAMES, ibug68_to_kaggle15, interocular_distance
from trainer.frames import FrameSource, best_box_index, person_of

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
        detections = pipeline.detect(gray)
        i = best_box_index(detections.boxes_xywh, pts, detections.angles_deg)
        if i is None:
            continue
        face = pipeline.keypoints_for_boxes(gray, detections.boxes_xywh[i:i + 1], detections.angles_deg[i:i + 1])[0]
        seconds += time.perf_counter() - started
        found += 1
        truth = ibug68_to_kaggle15(pts)
        errors.append(np.linalg.norm(face.keypoints_px - truth, axis=1) / interocular_distance(truth))
        crop_sq_errors.append(((face.crop.to_crop(face.keypoints_px) - face.crop.to_crop(truth)) ** 2).mean())
    if not errors:
        return {"frames": total, "detected": 0, "detection_rate": 0.0}
    point_errors = np.array(errors)
    return {
        "frames": total,
        "detected": found,
        "detection_rate": round(found / max(total, 1), 4),
        "nme": round(float(point_errors.mean()), 4),
        "nme_median_frame": round(float(np.median(point_errors.mean(1))), 4),
        "frames_above_0.10": round(float((point_errors.mean(1) > FAILURE_NME).mean()), 4),
        "per_keypoint_nme": {n: round(float(v), 4) for n, v in zip(KEYPOINT_NAMES, point_errors.mean(0))},
        "crop_rmse_px": round(float(np.sqrt(np.mean(crop_sq_errors))), 3),
        "ms_per_face": round(1000 * seconds / found, 2),
        "flip_average": pipeline.flip_average,
        "recentre": dataclasses.asdict(pipeline.recentre) if pipeline.recentre else None,
    }


def rotate_frame(gray: np.ndarray, points: np.ndarray, angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """A frame turned counter-clockwise (as shown) by `angle_deg` on an enlarged black canvas (nothing is cut),
    and its labelled points moved with it: the face gains `angle_deg` of roll."""
    turned, matrix = turn_image(gray, angle_deg, border=cv2.BORDER_CONSTANT)
    return turned, np.asarray(points, dtype=np.float64) @ matrix[:, :2].T + matrix[:, 2]


def evaluate_rotated(model_path: str | os.PathLike, frames: str | os.PathLike, people: list[str] | None,
                     angles_deg: list[float], pipelines: dict[str, FacePipeline] | None = None,
                     every: int = 1) -> dict:
    """Detection rate and NME of each pipeline on the frames of `people` (all if None) turned by 0 and each
    of +-`angles_deg` (rotate_frame); `every`: every n-th frame only (a quick look while developing).

    Default pipelines: "before" (upright detection, today's path) and "after" (the RollSearch detection,
    crops turned by the detection's angle and the eye line). Returns {name: {angle: {frames, detected,
    detection_rate, nme, frames_above_0.10}}}; +-angle count together under the positive angle.
    """
    if pipelines is None:
        pipelines = {"before": FacePipeline(model_path, roll=False, refine_roll=False),
                     "after": FacePipeline(model_path, roll=RollSearch())}
    source = FrameSource(frames)
    names, points68 = source.read_labels()
    wanted = set(people) if people else None
    turns = [0.0] + [sign * abs(float(a)) for a in angles_deg if a for sign in (1, -1)]
    tallies: dict = {n: {abs(t): {"frames": 0, "errors": []} for t in turns} for n in pipelines}
    chosen = [(n, p) for n, p in zip(names, points68, strict=True) if wanted is None or person_of(n) in wanted][::every]
    for name, pts in chosen:
        gray = source.read_gray(name)
        if gray is None:
            continue
        for turn in turns:
            image, points = rotate_frame(gray, pts, turn) if turn else (gray, pts)
            truth = ibug68_to_kaggle15(points)
            for label, pipeline in pipelines.items():
                tally = tallies[label][abs(turn)]
                tally["frames"] += 1
                found = pipeline.detect(image)
                i = best_box_index(found.boxes_xywh, points, found.angles_deg)
                if i is None:
                    continue
                face = pipeline.keypoints_for_boxes(image, found.boxes_xywh[i:i + 1], found.angles_deg[i:i + 1])[0]
                tally["errors"].append(np.linalg.norm(face.keypoints_px - truth, axis=1).mean()
                                       / interocular_distance(truth))
    out: dict = {}
    for label, by_angle in tallies.items():
        out[label] = {}
        for angle, tally in sorted(by_angle.items()):
            e = np.asarray(tally["errors"])
            out[label][angle] = {"frames": tally["frames"], "detected": len(e),
                                 "detection_rate": round(len(e) / max(tally["frames"], 1), 4),
                                 "nme": round(float(e.mean()), 4) if len(e) else None,
                                 "frames_above_0.10": round(float((e > FAILURE_NME).mean()), 4) if len(e) else None}
    return out


def rotated_table(result: dict) -> str:
    """evaluate_rotated's result as one text table: per angle, each pipeline's detection rate and NME, and the
    NME as a multiple of that pipeline's upright NME."""
    labels = list(result)
    head = "angle  " + "".join(f"| {label + ' detected':>16} {'NME':>7} {'x upright':>9} " for label in labels)
    lines = [head, "-" * len(head)]
    for angle in result[labels[0]]:
        row = f"{'+-' if angle else '  '}{angle:<5g}"
        for label in labels:
            r, upright = result[label][angle], result[label][0.0]["nme"]
            ratio = f"{r['nme'] / upright:.3f}" if r["nme"] and upright else "-"
            nme = f"{r['nme']:.4f}" if r["nme"] is not None else "-"
            row += f"| {r['detection_rate']:>16.4f} {nme:>7} {ratio:>9} "
        lines.append(row)
    return "\n".join(lines)
