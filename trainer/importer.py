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
"""
from __future__ import annotations

import json
import os
import re
import sys
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pandas as pd

from core.detector import DetectorSettings, FaceDetector
from core.geometry import CropTransform, box_iou, crop_from_box
from core.schema import ibug68_to_kaggle15
from trainer.data import COPY_MARK, DatasetError, KeypointData, write_kaggle_csv


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


def person_of(frame_name: str) -> str:
    """'Luis_Fonsi_21.jpg' -> 'Luis_Fonsi'."""
    return re.sub(r"_\d+\.\w+$", "", Path(frame_name).name)


def read_68_csv(path: str | os.PathLike | Path) -> tuple[list[str], np.ndarray]:
    """File names and (N, 68, 2) points from a 68-point CSV (first column = file name)."""
    table = pd.read_csv(path)
    if table.shape[1] != 137:
        raise DatasetError(f"{Path(path).name}: expected a file-name column and 136 coordinates, "
                           f"found {table.shape[1]} columns.")
    points = table.iloc[:, 1:].to_numpy(np.float64).reshape(-1, 68, 2)
    return table.iloc[:, 0].astype(str).tolist(), points


class FrameSource:
    """Reads frames by name from a folder or a .zip (searching the zip's subfolders)."""

    def __init__(self, location: str | os.PathLike):
        self.location = Path(location)
        try:
            self._zip = zipfile.ZipFile(self.location) if self.location.suffix.lower() == ".zip" else None
        except zipfile.BadZipFile as exc:
            raise DatasetError(f"{self.location.name} is not a readable zip file ({exc}).") from None
        if self._zip:
            self._members = {Path(n).name: n for n in self._zip.namelist() if not n.endswith("/")}

    def read_gray(self, name: str) -> np.ndarray | None:
        if self._zip:
            member = self._members.get(name)
            data = self._zip.read(member) if member else None
        else:
            p = self.location / name
            data = p.read_bytes() if p.is_file() else None
        if not data:
            return None
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)

    def read_labels(self, csv_path: str | os.PathLike | None = None) -> tuple[list[str], np.ndarray]:
        """File names and 68 points: from `csv_path`, else from the *_keypoints.csv inside the source."""
        if csv_path is not None:
            return read_68_csv(csv_path)
        inside = self.find("_keypoints.csv")
        if inside is None:
            raise DatasetError(f"No *_keypoints.csv found in {self.location}; pass the CSV path.")
        if self._zip:
            with self._zip.open(inside) as f:
                return read_68_csv(f)
        return read_68_csv(inside)

    def find(self, suffix: str) -> str | None:
        """The path inside the zip (or folder) of the first file ending with `suffix`."""
        if self._zip:
            return next((n for n in self._zip.namelist() if n.endswith(suffix)), None)
        hits = sorted(self.location.rglob(f"*{suffix}"))
        return str(hits[0]) if hits else None


def best_box(boxes: np.ndarray, points: np.ndarray) -> np.ndarray | None:
    """The detection that best overlaps the labelled points' bounding box (IoU > 0.3), else None."""
    if len(boxes) == 0:
        return None
    lo, hi = points.min(0), points.max(0)
    label = np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])
    ious = [box_iou(b, label) for b in boxes]
    i = int(np.argmax(ious))
    return boxes[i] if ious[i] > 0.3 else None



def import_68_dataset(
    frames: str | os.PathLike,
    out_csv: str | os.PathLike,
    csv_path: str | os.PathLike | None = None,
    detector_settings: DetectorSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
    jitter: JitterConfig = JitterConfig(),
) -> ImportReport:
    """Detect, crop and map every labelled frame; write Kaggle CSV + `<out>.report.json`."""
    source = FrameSource(frames)
    rng = np.random.default_rng(jitter.seed)
    names, points68 = source.read_labels(csv_path)
    detector = FaceDetector(detector_settings)
    report = ImportReport(frames=len(names), jitter=asdict(jitter) if jitter.copies else {},
                          command=" ".join(["python", "-m", "trainer", *sys.argv[1:]]) if "trainer" in sys.argv[0] else None)
    images, keypoints, groups, kept = [], [], [], []
    for i, (name, pts) in enumerate(zip(names, points68)):
        gray = source.read_gray(name)
        if gray is None:
            report.unreadable.append(name)
        else:
            box = best_box(detector.detect(gray), pts)
            if box is None:
                report.no_face.append(name)
            else:
                report.imported += 1
                truth = ibug68_to_kaggle15(pts)
                for copy, crop in enumerate([crop_from_box(box), *jitter.crops(box, truth, rng)]):
                    images.append(crop.extract(gray))
                    keypoints.append(crop.to_crop(truth))
                    groups.append(person_of(name))
                    kept.append(f"{name}{COPY_MARK}jitter{copy}" if copy else name)
        if progress:
            progress(i + 1, len(names))
    if not images:
        raise DatasetError("No face was detected in any frame; nothing to import.")
    report.rows = len(images)
    report.people = len(set(groups))
    data = KeypointData(np.stack(images), np.stack(keypoints).astype(np.float32), np.array(groups), np.array(kept))
    out_csv = Path(out_csv)
    write_kaggle_csv(data, out_csv)
    tmp = out_csv.with_name(out_csv.name + ".report.json.tmp")
    tmp.write_text(json.dumps(report.to_dict(), indent=1))
    os.replace(tmp, out_csv.with_name(out_csv.name + ".report.json"))
    return report
