"""The server process serves every page without TensorFlow or Keras: core runs the ONNX twins, and the
pages reach trainer only for what needs no Keras (run folders, configs, archives of existing files).

The pages run in a subprocess (Streamlit's AppTest), so modules other tests imported cannot hide an
import the pages make themselves."""
import json
import shutil
import subprocess
import sys

import cv2
import numpy as np

from core.model import onnx_path_for
from tests.conftest import REPO, SHARED_DATA

PROBE = r"""
import json, sys
import streamlit as st
from streamlit.testing.v1 import AppTest

st.set_option("client.showErrorDetails", "full")  # the app's config hides them from browsers


def webrtc_outside_a_server(e):
    # AppTest mocks the runtime, and streamlit_webrtc needs a real one: the webcam page runs (imports
    # included) up to its webrtc_streamer call; tests/test_e2e_webcam.py drives it on a real server.
    return "webcam.py" in e.stack_trace[0] and "_session_mgr" in e.message


at = AppTest.from_file("app.py", default_timeout=180).run()
visited, problems, titles = ["app.py"], [e.message for e in at.exception], [[t.value for t in at.title]]
for page in ("pages/photo.py", "pages/webcam.py", "pages/dataset.py", "pages/training.py"):
    at.switch_page(page).run()
    visited.append(page)
    problems += [f"{page}: {e.message}" for e in at.exception if not webrtc_outside_a_server(e)]
    titles.append([t.value for t in at.title])
at.selectbox(key="export-run").set_value("finished").run()  # the training page packs the run's archive
problems += [f"training page, download: {e.message}" for e in at.exception]
packed = [c.value for c in at.caption if c.value.startswith("finished.zip")]
at.switch_page("pages/photo.py").run()
next(r for r in at.radio if r.label == "Source").set_value("Sample").run()
next(s for s in at.selectbox if s.label == "Sample photo").set_value(sys.argv[1]).run()
problems += [f"photo path: {e.value}" for e in at.exception]
faces = [m.value for m in at.metric if m.label == "Faces found"]
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "keras", "tf2onnx"})
print(json.dumps({"visited": visited, "titles": titles, "problems": problems, "packed": packed, "faces": faces,
                  "heavy": heavy}))
"""


def test_every_page_and_the_photo_path_run_without_tensorflow_or_keras(tmp_path, tiny_model_path):
    runs, samples = tmp_path / "runs", tmp_path / "samples"
    finished = runs / "finished"  # a finished run, so the training page lists, charts and packs one
    finished.mkdir(parents=True)
    shutil.copy(tiny_model_path, finished / "model.keras")
    shutil.copy(onnx_path_for(tiny_model_path), finished / "model.onnx")
    (finished / "model.json").write_text(json.dumps({"model": "model.keras", "run": "finished",
                                                     "metrics": {"test_rmse_px": 4.0}}))
    (finished / "config.json").write_text(json.dumps({"widths": [8, 16, 32, 64, 128]}))
    (finished / "state.json").write_text(json.dumps({"finished": True}))
    samples.mkdir()
    real = SHARED_DATA / "photos" / "fawzia.jpg"
    if real.is_file():
        shutil.copy(real, samples / "face.jpg")
    else:  # no shared data: a drawn picture still takes the whole path (detector, verifier, model loading)
        picture = np.full((480, 640, 3), 200, np.uint8)
        cv2.ellipse(picture, (320, 240), (90, 120), 0, 0, 360, (120, 140, 170), -1)
        cv2.imwrite(str(samples / "face.jpg"), picture)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "FKS_RUNS_DIR": str(runs),
           "FKS_DATA_DIR": str(tmp_path / "data"), "FKS_SAMPLES_DIR": str(samples)}
    out = subprocess.run([sys.executable, "-c", PROBE, "face.jpg"], cwd=REPO, capture_output=True, text=True,
                         timeout=900, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["problems"] == []
    assert seen["visited"] == ["app.py", "pages/photo.py", "pages/webcam.py", "pages/dataset.py", "pages/training.py"]
    assert [t[:1] for t in seen["titles"]] == [["Facial Keypoints Studio"], ["Photo"], ["Webcam"], ["Dataset"],
                                              ["Training"]], seen
    assert len(seen["packed"]) == 1, seen  # the training page listed the finished run and packed its archive
    if real.is_file():
        assert seen["faces"] == ["1"], seen  # the keypoint model ran on a found face
    assert seen["heavy"] == [], f"the server imported {seen['heavy']}"
