"""Photo: every face of a picture with its keypoints and a chosen effect, then downloads."""
from __future__ import annotations

from pages.ui import load_pipeline, model_version, page_setup, sample_photos  # isort: skip  (first: imports streamlit_webrtc before TensorFlow)

import cv2
import streamlit as st

from core.detector import DetectorSettings
from core.export import faces_dataframe, faces_json
from core.images import ImageError, load_image, shrink_to
from core.overlays import EFFECTS, KEYPOINT_LEGEND, draw_face_number, draw_rejected_box, face_closeup
from core.pipeline import render

DISPLAY_MAX_SIDE = 1600  # what the browser gets; downloads keep full resolution
SENSITIVITY_MAX = 9  # Haar min_neighbors = 10 - sensitivity, so 1 at the top

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
    sensitivity = st.slider("Detector sensitivity", 1, SENSITIVITY_MAX, 5,
                            help="Higher finds more (smaller, fainter) faces but also more false ones.")
    show_rejected = st.checkbox("Show rejected boxes", value=False, disabled=pipeline.verifier is None,
                                help="Draw (dashed grey, with the face verifier's score) the detector boxes "
                                     "judged not to be faces." if pipeline.verifier is not None else
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
    faces = pipeline.find_faces(image, boxes_xywh=detections.boxes_xywh, angles_deg=detections.angles_deg)
    return image, faces, detections


try:
    image, faces, detections = analyse(data, 10 - sensitivity, model_version(pipeline))
except ImageError as exc:
    st.error(f"Could not use this file: {exc}")
    st.stop()

numbers = list(range(1, len(faces) + 1))  # the same numbers in the pickers, the table, CSV and JSON


def face_label(number: int) -> str:
    return f"face {number}"


st.metric("Faces found", len(faces))
if not faces:
    if sensitivity < SENSITIVITY_MAX:
        st.warning("No face was found. Faces should be roughly frontal and not too small; "
                   "try raising **Detector sensitivity** in the sidebar.")
    else:
        st.warning("No face was found, even at the highest detector sensitivity. The detector finds roughly "
                   "frontal faces that are not too small: try a photo where faces look at the camera.")
else:
    kept = st.multiselect("Faces in the result", numbers, default=numbers, format_func=face_label,
                          key=f"keep-{name}-{len(faces)}",
                          help="Remove anything the detector took for a face by mistake: it leaves the "
                               "picture, the table and the downloads.")
    faces, numbers = [faces[n - 1] for n in kept], kept

hidden = (st.multiselect("Faces to hide", numbers, default=numbers, format_func=face_label, key=f"hide-{name}")
          if privacy != "off" and faces else [])
result = render(image, faces, effect, hide=[numbers.index(n) for n in hidden], privacy=privacy)
shown = result.copy()  # what the page shows: the download stays without numbers and rejected boxes
if show_rejected:
    for box, score, angle, mirror in zip(detections.rejected_xywh, detections.rejected_scores,
                                         detections.rejected_angles_deg, detections.rejected_by_flip_check, strict=True):
        draw_rejected_box(shown, box, score, angle_deg=angle, note="mirror" if mirror else "")
    thresholds = f"{pipeline.verifier.threshold:.2f}"
    turned = pipeline.turned_threshold
    if turned is not None and turned > pipeline.verifier.threshold:
        thresholds += f"; {turned:.2f} for a box found on a turned copy"
    mirrored = int(detections.rejected_by_flip_check.sum())
    st.caption(f"{len(detections.rejected_xywh)} box(es) rejected, drawn dashed grey with the face verifier's "
               f"score: under its threshold ({thresholds})"
               + (f", or tagged *mirror* ({mirrored}): the keypoint model read the crop and its mirror "
                  "differently, so it is not taken for a face" if mirrored else "")
               + ". Each face kept shows its number and score: remove one kept by mistake under **Faces in the "
               "result**.")
scores = detections.scores if show_rejected and detections.scores is not None else None
for n, face in zip(numbers, faces, strict=True):  # the numbers the pickers, the table and the downloads use
    draw_face_number(shown, face.box_xywh, n, None if scores is None else float(scores[n - 1]))


left, right = st.columns(2)
left.image(shrink_to(image, DISPLAY_MAX_SIDE), channels="BGR", caption=f"{name} ({image.shape[1]}x{image.shape[0]})",
           width="stretch")
right.image(shrink_to(shown, DISPLAY_MAX_SIDE), channels="BGR", width="stretch",
            caption="result (each face's number on a blue tag)" if faces else "result")
if effect == "labelled keypoints" and faces:
    st.caption("Close-ups, so the numbers can be read:")
    hidden_only = render(image, faces, "none", hide=[numbers.index(n) for n in hidden], privacy=privacy)
    for column, n, face in zip(st.columns(len(faces)), numbers, faces, strict=True):
        column.image(face_closeup(hidden_only, face.box_xywh, face.keypoints_px), channels="BGR",
                     caption=face_label(n))
    st.caption("Keypoint numbers: " + " · ".join(KEYPOINT_LEGEND) + ". A number is left out where it would not fit.")

stem = name.rsplit(".", 1)[0]
png = cv2.imencode(".png", result)[1].tobytes()
if faces:
    st.subheader("Keypoints (image pixels)")
    table = faces_dataframe(faces, numbers=numbers)
    st.dataframe(table, hide_index=True)
    c1, c2, c3 = st.columns(3)
    c2.download_button("Download keypoints (CSV)", table.to_csv(index=False), f"{stem}_keypoints.csv", "text/csv",
                       on_click="ignore")
    c3.download_button("Download keypoints (JSON)", faces_json(faces, (image.shape[1], image.shape[0]), numbers),
                       f"{stem}_keypoints.json", "application/json", on_click="ignore")
else:
    c1 = st.columns(3)[0]
c1.download_button("Download image (PNG)", png, f"{stem}_annotated.png", "image/png", on_click="ignore")
