"""`python -m core annotate` over a folder mixing good images, a corrupt one and a text file (skipped: not an image)."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pandas as pd

from tests.conftest import REPO, SHARED_DATA


def test_folder_with_good_corrupt_and_text_files(tmp_path, tiny_model_path):
    """Two faces from the real photo when ../shared is present, else a face-less picture in its place."""
    folder = tmp_path / "in"
    folder.mkdir()
    photo = SHARED_DATA / "photos" / "obamas4.jpg"
    has_faces = photo.is_file()
    if has_faces:
        (folder / "obamas.jpg").write_bytes(photo.read_bytes())
    else:
        cv2.imwrite(str(folder / "obamas.jpg"), np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / "grey.png"), np.full((100, 120, 3), 128, np.uint8))
    good = cv2.imencode(".jpg", np.full((100, 100, 3), 90, np.uint8))[1].tobytes()
    (folder / "broken.jpg").write_bytes(good[:40])
    (folder / "readme.txt").write_text("not an image")
    out = subprocess.run([sys.executable, "-m", "core", "annotate", str(folder), "--out", str(tmp_path / "out"),
                          "--model", str(tiny_model_path), "--privacy", "blur"],
                         cwd=REPO, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert out.returncode == 0, out.stderr[-2000:]
    assert (f"images: 2 annotated, 1 failed; faces: {2 if has_faces else 0}; 1 non-image files in the folders skipped"
            in out.stdout)
    assert "broken.jpg" in out.stdout and "readme.txt" not in out.stdout and "Traceback" not in out.stderr
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["grey_annotated.png", "obamas_annotated.png"]
    table = pd.read_csv(tmp_path / "out" / "keypoints.csv")
    assert len(table) == (2 if has_faces else 0)
    assert table["image"].str.endswith("obamas.jpg").all()
    blurred = cv2.imread(str(tmp_path / "out" / "obamas_annotated.png"))
    original = cv2.imread(str(folder / "obamas.jpg"))
    assert blurred.shape == original.shape
    assert (blurred == original).all() != has_faces  # faces blurred; a face-less picture left as it was
