"""`python -m core annotate` on files given one by one, and the one-line errors for a bad --out or --model."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pandas as pd

from tests.conftest import REPO


def _annotate(args, tmp_path):
    return subprocess.run([sys.executable, "-m", "core", "annotate", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "FKS_RUNS_DIR": str(tmp_path / "runs")})


def test_files_sharing_a_stem_get_distinct_outputs_and_an_unwritable_one_is_reported(tmp_path, tiny_model_path):
    grey = np.full((60, 80, 3), 128, np.uint8)
    for name in ("a.png", "a.jpg", "b.png"):
        cv2.imwrite(str(tmp_path / name), grey)
    out_dir = tmp_path / "out"
    (out_dir / "b_annotated.png").mkdir(parents=True)  # an output name taken by a folder: cannot be written
    out = _annotate([tmp_path / "a.png", tmp_path / "a.jpg", tmp_path / "b.png", "--out", out_dir,
                     "--model", tiny_model_path, "--effect", "hat"], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]  # some images were annotated
    assert "images: 2 annotated, 1 failed; faces: 0" in out.stdout
    assert f"skipped {tmp_path / 'b.png'}: could not write b_annotated.png" in out.stdout
    assert sorted(p.name for p in out_dir.glob("*_annotated.png") if p.is_file()) == ["a_annotated.png",
                                                                                        "a_jpg_annotated.png"]
    assert pd.read_csv(out_dir / "keypoints.csv").empty  # no face in a grey picture: a header, no rows


def test_only_failures_exit_1_and_bad_out_or_model_exit_2_in_one_line(tmp_path, tiny_model_path):
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    out = _annotate([tmp_path / "broken.jpg", tmp_path / "absent.png", "--out", tmp_path / "o",
                     "--model", tiny_model_path], tmp_path)
    assert out.returncode == 1 and "images: 0 annotated, 2 failed" in out.stdout, out.stdout + out.stderr[-2000:]
    assert "Traceback" not in out.stderr

    (tmp_path / "a-file").write_text("x")
    for args, message in [
        (["--out", tmp_path / "a-file"], "is a file; give a folder"),
        (["--out", tmp_path / "a-file" / "sub"], "cannot create the --out folder"),
        (["--out", tmp_path / "o2", "--model", tmp_path / "none.keras"], "No model file"),
    ]:
        model = [] if "--model" in args else ["--model", tiny_model_path]
        out = _annotate([tmp_path / "broken.jpg", *args, *model], tmp_path)
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], \
            out.stderr[-2000:]
