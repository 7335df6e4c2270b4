"""Keypoints out: CSV and JSON in image-pixel coordinates with the Kaggle names.

Shared by the photo page's downloads and the folder CLI so both write the same columns.
"""
from __future__ import annotations

import json
from collections.abc import Sequence

import pandas as pd

from core.pipeline import Face
from core.schema import COORD_COLUMNS, KEYPOINT_NAMES

#: The box columns of the table, after `face`: the box (x, y, w, h) turned about its centre by the angle.
BOX_COLUMNS = ("box_x", "box_y", "box_w", "box_h", "box_angle_deg")


def faces_table(faces: list[Face]) -> list[dict]:
    """One flat dict per face (box + 15 named x/y in image pixels), for CSV/JSON export and tables.

    `face` counts from 1, as the pages name faces ("face 1", "face 2", …), in the order of `faces`. A tilted
    face's box is turned about its centre by `box_angle_deg` (counter-clockwise as shown; 0: upright).
    """
    rows = []
    for number, f in enumerate(faces, start=1):
        row: dict[str, float] = {"face": number,
                                 **dict(zip(BOX_COLUMNS, [*map(int, f.box_xywh), round(f.angle_deg, 1)], strict=True))}
        row.update({c: round(float(v), 2) for c, v in zip(COORD_COLUMNS, f.keypoints_px.reshape(-1))})
        rows.append(row)
    return rows


def faces_dataframe(faces: Sequence[Face], image_name: str | None = None,
                    numbers: Sequence[int] | None = None) -> pd.DataFrame:
    """One row per face: [image], face, box_x/y/w/h/angle_deg, then <keypoint>_x/_y for the 15 keypoints.

    `face` is 1, 2, … or `numbers`: the faces' numbers in the page when a person removed some."""
    table = pd.DataFrame(faces_table(list(faces)))
    if numbers is not None and len(table):
        table["face"] = list(numbers)
    if table.empty:
        table = pd.DataFrame(columns=["face", *BOX_COLUMNS, *COORD_COLUMNS])
    if image_name is not None:
        table.insert(0, "image", image_name)
    return table


def faces_json(faces: Sequence[Face], image_size: tuple[int, int] | None = None,
               numbers: Sequence[int] | None = None) -> str:
    """{"image_size": [w, h], "faces": [{"face": 1, "box_xywh": [...], "box_angle_deg": a,
    "keypoints": {name: [x, y]}}]}

    Faces are numbered as in faces_dataframe; a box is turned about its centre by its angle."""
    return json.dumps({
        "image_size": list(image_size) if image_size else None,
        "coordinates": "image pixels, origin top-left",
        "faces": [{"face": number, "box_xywh": [int(v) for v in f.box_xywh], "box_angle_deg": round(f.angle_deg, 1),
                   "keypoints": {n: [round(float(x), 2), round(float(y), 2)]
                                 for n, (x, y) in zip(KEYPOINT_NAMES, f.keypoints_px)}}
                  for number, f in zip(numbers or range(1, len(faces) + 1), faces)],
    }, indent=1)
