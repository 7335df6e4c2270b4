"""Small data the tests make themselves."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from trainer.synthetic import FRONTAL_SHAPE_CROP, synthetic_faces, write_synthetic_csv  # noqa: F401  (tests import them from here)


def write_y4m(frames_bgr: list[np.ndarray], path: Path, fps: int = 30) -> Path:
    """Frames -> a YUV4MPEG2 (4:2:0) file, the format Chromium's fake camera reads."""
    h, w = frames_bgr[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames_bgr:
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


def video_frames(path: Path, size: tuple[int, int] | None = (640, 480), limit: int = 150) -> list[np.ndarray]:
    """Decoded frames of a video file, resized (the webcam page asks for 640x480) unless `size` is None."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < limit:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame if size is None else cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR))
    capture.release()
    return frames


def small_68_zip(source_zip: Path, out: Path, people: int | list[str], blank: bool = False) -> tuple[Path, int]:
    """The real frames of the first `people` people (or of the people named) of a 68-point zip, as a small zip in
    the same layout (plus, with `blank`, one labelled frame with no face in it). Returns the zip and its count of
    real frames."""
    import zipfile

    import pandas as pd

    from trainer.importer import person_of

    with zipfile.ZipFile(source_zip) as z:
        csv_name = next(n for n in z.namelist() if n.endswith("_keypoints.csv"))
        table = pd.read_csv(z.open(csv_name))
        names = table.iloc[:, 0].map(person_of)
        chosen = table[names.isin(sorted(names.unique())[:people] if isinstance(people, int) else people)]
        members = {Path(n).name: n for n in z.namelist()}
        with zipfile.ZipFile(out, "w") as small:
            for name in chosen.iloc[:, 0]:
                small.writestr(f"training/{name}", z.read(members[name]))
            rows = chosen
            if blank:
                row = chosen.iloc[:1].copy()
                row.iloc[0, 0] = "Nobody_00.jpg"
                small.writestr("training/Nobody_00.jpg", cv2.imencode(".jpg", np.full((200, 200), 128, np.uint8))[1].tobytes())
                rows = pd.concat([chosen, row])
            small.writestr("training_frames_keypoints.csv", rows.to_csv(index=False))
    return out, len(chosen)


def wait_until(condition, timeout_s: float, what: str, poll_s: float = 0.2, detail=lambda: ""):
    """Poll `condition()` until it returns something truthy (returned), or fail after `timeout_s` naming `what`
    and, if given, `detail()` (e.g. the tail of a log): a hang fails with a reason, never blocks the suite."""
    import time

    import pytest

    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}\n{detail()}")
        time.sleep(poll_s)
