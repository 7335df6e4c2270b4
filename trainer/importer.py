"""Import 68-point full-frame datasets (YouTube-faces layout) into Kaggle format.

Input: a CSV of `file name, x0, y0, ..., x67, y67` (iBUG 300-W order, frame pixels) and the frames,
in a folder or a .zip. Each frame goes through core's detector and core's crop geometry, exactly
as at inference, and its 68 points become the 15 Kaggle points in crop pixels. Frames where the
detector finds no face matching the labels are counted and listed in the report, never dropped
silently. The person id is the file name without its trailing `_NN.jpg`.

Optionally each frame also yields `JitterConfig.copies` extra crops from boxes moved and resized
at random around the detector's box: real pixels around a face framed the way a worse detection
would frame it, where the trainer's augmentation of a 96 px crop can only repeat its border.
Copies are named `<frame>#jitterN`; trainer.recipe trains on them but never validates or tests on them.
Each face's 68 points, in the same crop px, go to the sidecar `<out>.points68.npz` (trainer.points68).
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from core.detector import DetectorSettings, FaceDetector
from core.files import write_json_atomic
from core.geometry import CropTransform, crop_from_box
from core.schema import ibug68_to_kaggle15
from trainer.cards import command_line
from trainer.data import COPY_MARK, DatasetError, KeypointData, write_kaggle_csv
from trainer.frames import FrameSource, best_box, person_of
from trainer.points68 import write_sidecar


@dataclass(frozen=True)
class JitterConfig:
    """Extra crops per frame from boxes jittered around the detection (0 copies = the detector's crop only).

    The default spread is wide sideways on purpose: the Haar box of a turned head centres on the
    head, not the face, and the held-out frames the model failed on had their face 20-30 crop px
    off-centre, where 99% of detector crops are within 9 px.
    """

    copies: int = 0
    shift_sd: tuple[float, float] = (0.12, 0.06)  # box centre moves by N(0, sd) x box side, in x and y
    scale_sd: float = 0.10  # box side is multiplied by exp(N(0, scale_sd))
    clip_sd: float = 2.5  # draws beyond this many standard deviations are clipped
    retries: int = 10  # a draw that pushes a labelled point out of the crop is drawn again, then skipped
    seed: int = 0

    def crops(self, box: np.ndarray, keypoints_px: np.ndarray, rng: np.random.Generator) -> list[CropTransform]:
        """Up to `copies` crops around `box` that keep every keypoint inside the 96x96 frame."""
        x, y, w, h = (float(v) for v in box)
        out = []
        for _ in range(self.copies):
            for _ in range(self.retries):
                dx, dy = np.clip(rng.normal(0, 1, 2), -self.clip_sd, self.clip_sd) * self.shift_sd * max(w, h)
                s = float(np.exp(np.clip(rng.normal(), -self.clip_sd, self.clip_sd) * self.scale_sd))
                cx, cy = x + w / 2 + dx, y + h / 2 + dy
                crop = crop_from_box((cx - w * s / 2, cy - h * s / 2, w * s, h * s))
                k = crop.to_crop(keypoints_px)
                if ((k >= 0) & (k <= crop.size - 1)).all():
                    out.append(crop)
                    break
        return out


@dataclass
class ImportReport:
    frames: int = 0
    imported: int = 0
    no_face: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    people: int = 0
    rows: int = 0  # imported faces plus their jitter copies
    jitter: dict = field(default_factory=dict)
    command: str | None = None  # the import-68 command line, when run from the CLI (for model cards)

    @property
    def detection_rate(self) -> float:
        return self.imported / max(self.frames, 1)

    def to_dict(self) -> dict:
        return {**asdict(self), "detection_rate": round(self.detection_rate, 4)}


def matching_box(detector: FaceDetector, gray: np.ndarray, points: np.ndarray) -> np.ndarray | None:
    """best_box of the detector's boxes, skipping the scan for faces too small to be the labelled one.

    A square box under 0.3x the labelled area cannot reach IoU 0.3 with it, so smaller windows need no
    scan; they are the cascade's most numerous (bench/bench_import.py times both). 0.8x that side leaves
    room for the cascade's grouping of neighbouring windows, so the box found is the full scan's
    (tests/test_importer.py compares both).
    """
    width, height = points.max(0) - points.min(0)
    smallest_px = 0.8 * np.sqrt(0.3 * max(width, 1.0) * max(height, 1.0))
    settings = replace(detector.settings, min_size_fraction=smallest_px / min(gray.shape))
    return best_box(detector.detect(gray, settings), points)


#: Frames per task handed to a worker process: large enough to hide the hand-off, small enough for smooth progress.
CHUNK_FRAMES = 64


def default_workers() -> int:
    """Worker processes for detection: one per core this process may use."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def _detect_chunk(frames: str, names: list[str], points68: np.ndarray, settings: DetectorSettings | None,
                  find: Callable = matching_box) -> list[np.ndarray | str | None]:
    """Per frame: the detection matching its labels, None (no face) or "unreadable". Runs in a worker process."""
    cv2.setNumThreads(1)  # one process per core already; OpenCV's own threads would only compete
    source, detector = FrameSource(frames), FaceDetector(settings)
    out: list[np.ndarray | str | None] = []
    for name, pts in zip(names, points68):
        gray = source.read_gray(name)
        out.append("unreadable" if gray is None else find(detector, gray, pts))
    return out


def _detections(frames: str | os.PathLike, names: list[str], points68: np.ndarray,
                settings: DetectorSettings | None, workers: int, find: Callable,
                progress: Callable[[int, int], None] | None) -> list[np.ndarray | str | None]:
    """_detect_chunk over all frames, in `workers` processes (spawned: safe from a threaded server), in frame order."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    starts = range(0, len(names), CHUNK_FRAMES)
    results: list[np.ndarray | str | None] = []
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        chunks = pool.map(_detect_chunk, [str(frames)] * len(starts), [names[i:i + CHUNK_FRAMES] for i in starts],
                          [points68[i:i + CHUNK_FRAMES] for i in starts], [settings] * len(starts),
                          [find] * len(starts))
        for chunk in chunks:  # map yields in submission order: the output never depends on timing
            results.extend(chunk)
            if progress:
                progress(len(results), len(names))
    return results


def import_68_dataset(
    frames: str | os.PathLike,
    out_csv: str | os.PathLike,
    csv_path: str | os.PathLike | None = None,
    detector_settings: DetectorSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
    jitter: JitterConfig = JitterConfig(),
    workers: int | None = None,
    find: Callable[[FaceDetector, np.ndarray, np.ndarray], np.ndarray | None] = matching_box,
) -> ImportReport:
    """Detect, crop and map every labelled frame; write Kaggle CSV + `<out>.report.json`.

    Detection, nearly all of the cost, runs in `workers` processes (default: one per core;
    1 = in this process). Crops and jitter are then made here in frame order, so the output is
    the same for any number of workers. `find` picks each frame's box (bench/bench_import.py passes a full scan).
    """
    source = FrameSource(frames)
    rng = np.random.default_rng(jitter.seed)
    names, points68 = source.read_labels(csv_path)
    workers = default_workers() if workers is None else max(1, workers)
    report = ImportReport(frames=len(names), jitter=asdict(jitter) if jitter.copies else {},
                          command=command_line())
    if workers > 1 and len(names) > CHUNK_FRAMES:
        detections = _detections(frames, names, points68, detector_settings, workers, find, progress)
    else:
        detector = FaceDetector(detector_settings)
        detections = []
        for name, pts in zip(names, points68):
            gray = source.read_gray(name)
            detections.append("unreadable" if gray is None else find(detector, gray, pts))
            if progress:
                progress(len(detections), len(names))
    images, keypoints, groups, kept, crop68 = [], [], [], [], []
    for name, pts, box in zip(names, points68, detections):
        if isinstance(box, str):
            report.unreadable.append(name)
        elif box is None:
            report.no_face.append(name)
        else:
            gray = source.read_gray(name)
            assert gray is not None  # the box was found on this frame
            report.imported += 1
            truth = ibug68_to_kaggle15(pts)
            for copy, crop in enumerate([crop_from_box(box), *jitter.crops(box, truth, rng)]):
                images.append(crop.extract(gray))
                keypoints.append(crop.to_crop(truth))
                crop68.append(crop.to_crop(pts))
                groups.append(person_of(name))
                kept.append(f"{name}{COPY_MARK}jitter{copy}" if copy else name)
    if not images:
        raise DatasetError("No face was detected in any frame; nothing to import.")
    report.rows = len(images)
    report.people = len(set(groups))
    data = KeypointData(np.stack(images), np.stack(keypoints).astype(np.float32), np.array(groups), np.array(kept))
    out_csv = Path(out_csv)
    write_kaggle_csv(data, out_csv)
    write_sidecar(out_csv, data.source_frames, np.stack(crop68))  # the 68 points, for train --aux68
    write_json_atomic(out_csv.with_name(out_csv.name + ".report.json"), report.to_dict())
    return report


def read_import_report(out_csv: str | os.PathLike) -> dict | None:
    """The `<out>.report.json` an import wrote beside its CSV, or None when there is none (or it is unreadable)."""
    try:
        return json.loads(Path(out_csv).with_name(Path(out_csv).name + ".report.json").read_text())
    except (OSError, ValueError):
        return None
