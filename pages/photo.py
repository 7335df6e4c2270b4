"""Photo: every face of a picture with its keypoints and a chosen effect, then downloads."""
from __future__ import annotations

from pages.ui import load_pipeline, page_setup, sample_photos  # isort: skip  (first: imports streamlit_webrtc before TensorFlow)

import cv2
import numpy as np
import streamlit as st

from core.detector import DetectorSettings
from core.export import faces_csv, faces_dataframe, faces_json
from core.overlays import EFFECTS, draw_rejected_box
from core.images import ImageError, load_image
from core.pipeline import render

DISPLAY_MAX_SIDE = 1600  # what the browser gets; downloads keep full resolution

page_setup("Photo")
st.title("Photo")
st.caption("Drop in a photo: faces are found, 15 keypoints are predicted per face, and the effect you pick is drawn.")

pipeline = load_pipeline()
if pipeline is None:
    st.stop()

with st.sidebar:
    st.header("Effect")
    effect = st.selectbox("Overlay", [e for e in EFFECTS if e not in ("blur", "pixelate")], index=2)
    privacy = st.radio("Privacy", ["off", "blur", "pixelate"], horizontal=True,
                       help="Hide identities: blur or pixelate the faces you choose below.")
    sensitivity = st.slider("Detector sensitivity", 1, 9, 5,
                            help="Higher finds more (smaller, fainter) faces but also more false ones.")
    show_rejected = st.checkbox("Show rejected boxes", value=False, disabled=pipeline.verifier is None,
                                help="Draw (dashed grey, with the face verifier's score) the detector boxes "
                                     "the verifier judged not to be faces." if pipeline.verifier is not None else
                                     "No face verifier is installed (models/face-verifier.keras): every box is kept.")

source = st.radio("Source", ["Upload", "Camera", "Sample"], horizontal=True, label_visibility="collapsed")
data, name = None, "photo"
if source == "Upload":
    upload = st.file_uploader("Photo (JPEG, PNG, WebP or BMP)", type=["jpg", "jpeg", "png", "webp", "bmp"])
    if upload is not None:
        data, name = upload.getvalue(), upload.name
elif source == "Camera":
    snapshot = st.camera_input("Take a snapshot")
    if snapshot is not None:
        data, name = snapshot.getvalue(), "snapshot.jpg"
else:
    samples = sample_photos()
    if not samples:
        st.info("No sample photos on this server (they come from ../shared/data/photos). Upload one instead.")
    else:
        chosen = st.selectbox("Sample photo", list(samples))
        data, name = samples[chosen].read_bytes(), chosen

if data is None:
    st.stop()


@st.cache_data(max_entries=8, show_spinner="Finding faces…")
def analyse(data: bytes, min_neighbors: int, model_key: str):
    image = load_image(data)
    detections = pipeline.detect(image, DetectorSettings(min_neighbors=min_neighbors), with_rejected=True)
    return image, pipeline.find_faces(image, boxes_xywh=detections.boxes_xywh), detections


try:
    image, faces, detections = analyse(data, 10 - sensitivity, str(pipeline.predictor.keras_path))
except ImageError as exc:
    st.error(f"Could not use this file: {exc}")
    st.stop()

st.metric("Faces found", len(faces))
if not faces:
    st.warning("No face was found. Faces should be roughly frontal and not too small; "
               "try raising **Detector sensitivity** in the sidebar.")

labels = [f"face {i + 1}" for i in range(len(faces))]
hidden = st.multiselect("Faces to hide", labels, default=labels) if privacy != "off" and faces else []
result = render(image, faces, effect)
if hidden:
    result = render(result, faces, privacy, [labels.index(h) for h in hidden])
if show_rejected:
    for box, score in zip(detections.rejected_xywh, detections.rejected_scores):
        draw_rejected_box(result, box, score)
    st.caption(f"{len(detections.rejected_xywh)} box(es) rejected by the face verifier "
               f"(threshold {pipeline.verifier.threshold:.2f}), drawn dashed grey with their score.")


def for_display(img: np.ndarray) -> np.ndarray:
    scale = DISPLAY_MAX_SIDE / max(img.shape[:2])
    return cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else img


left, right = st.columns(2)
left.image(for_display(image), channels="BGR", caption=f"{name} ({image.shape[1]}x{image.shape[0]})", width="stretch")
right.image(for_display(result), channels="BGR", caption="result", width="stretch")

if faces:
    st.subheader("Keypoints (image pixels)")
    st.dataframe(faces_dataframe(faces), hide_index=True)

stem = name.rsplit(".", 1)[0]
png = cv2.imencode(".png", result)[1].tobytes()
c1, c2, c3 = st.columns(3)
c1.download_button("Download image (PNG)", png, f"{stem}_annotated.png", "image/png", on_click="ignore")
c2.download_button("Download keypoints (CSV)", faces_csv(faces), f"{stem}_keypoints.csv", "text/csv", on_click="ignore")
c3.download_button("Download keypoints (JSON)", faces_json(faces, (image.shape[1], image.shape[0])),
                   f"{stem}_keypoints.json", "application/json", on_click="ignore")
