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
