"""Reading a 68-point frame dataset (YouTube-faces layout): frames by name from a folder or a .zip, their
labels from the 68-point CSV, the person each frame shows, and which detector box is the labelled face.

Shared by the importer (trainer.importer), end-to-end evaluation (trainer.evaluate), the verifier's
mining (trainer.verifier) and the benchmarks.
"""
from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path
from typing import IO

import cv2
import numpy as np
import pandas as pd

from core.geometry import CropTransform, box_iou
from trainer.data import DatasetError


def person_of(frame_name: str) -> str:
    """'Luis_Fonsi_21.jpg' -> 'Luis_Fonsi'."""
    return re.sub(r"_\d+\.\w+$", "", Path(frame_name).name)


def read_68_csv(path: str | os.PathLike | IO[bytes]) -> tuple[list[str], np.ndarray]:
    """File names and (N, 68, 2) points from a 68-point CSV (first column = file name)."""
    table = pd.read_csv(path)
    if table.shape[1] != 137:
        raise DatasetError(f"{Path(str(getattr(path, 'name', path))).name}: expected a file-name column and 136 coordinates, "
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


def best_box(boxes: np.ndarray, points: np.ndarray, angles_deg: np.ndarray | None = None) -> np.ndarray | None:
    """The detection that best overlaps the labelled points' bounding box (IoU > 0.3), else None."""
    i = best_box_index(boxes, points, angles_deg)
    return None if i is None else boxes[i]


def label_ious(boxes: np.ndarray, points: np.ndarray, angles_deg: np.ndarray | None = None) -> np.ndarray:
    """IoU of each box with the labelled points' bounding box, both seen in the box's own turned frame
    (a box turned by its angle; plain box_iou for upright boxes)."""
    out = []
    for i, b in enumerate(np.asarray(boxes, dtype=np.float64).reshape(-1, 4)):
        angle = 0.0 if angles_deg is None else float(angles_deg[i])
        seen = points
        if angle != 0:  # the points turned about the box's centre as its crop turns them: upright around the box
            side = max(b[2], b[3])
            upright = CropTransform(b[0] + b[2] / 2 - side / 2, b[1] + b[3] / 2 - side / 2, side, angle_deg=angle)
            seen = (upright.to_crop(points) - upright.to_crop(upright.centre)) / upright.scale + upright.centre
        lo, hi = seen.min(0), seen.max(0)
        out.append(box_iou(b, np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])))
    return np.asarray(out)


def best_box_index(boxes: np.ndarray, points: np.ndarray, angles_deg: np.ndarray | None = None) -> int | None:
    """best_box's index into `boxes`, or None."""
    if len(boxes) == 0:
        return None
    ious = label_ious(boxes, points, angles_deg)
    i = int(np.argmax(ious))
    return i if ious[i] > 0.3 else None
