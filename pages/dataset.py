"""Dataset: rows, missing labels, faces with their keypoints, and what augmentation does to them."""
from __future__ import annotations

from pages.ui import choose_dataset, load_dataset, page_setup  # isort: skip  (first: imports streamlit_webrtc before TensorFlow)

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from core.overlays import KEYPOINT_LEGEND
from core.paths import runs_dir
from core.schema import KEYPOINT_NAMES
from pages.ui import pictures
from trainer import explore
from trainer.augment import AugmentConfig, transform

TILES_PER_PAGE = 12
LEGEND = "Keypoint numbers: " + " · ".join(KEYPOINT_LEGEND)

page_setup("Dataset")
st.title("Dataset")
st.caption("Explore a Kaggle-format keypoint file (30 keypoint columns + Image) before training on it.")

path = choose_dataset("dataset")
if path is None:
    st.stop()
data = load_dataset(path)
if data is None:
    st.stop()

s = explore.summary(data)
c = st.columns(4)
c[0].metric("Rows", s["rows"])
c[1].metric("Complete rows", s["complete"])
c[2].metric("Incomplete rows", s["incomplete"])
c[3].metric("People", s["people"] if s["people"] is not None else "—")

overview, gallery, distributions, augmentation = st.tabs(["Overview", "Gallery", "Distributions", "Augmentation"])

with overview:
    table = explore.completeness(data)
    fig = px.bar(table, x="keypoint", y="labelled_rows", hover_data=["fraction"],
                 title="Rows labelling each keypoint")
    fig.update_layout(xaxis_tickangle=-40, height=420)
    st.plotly_chart(fig)
    st.subheader("Missing-label patterns")
    st.dataframe(explore.missing_patterns(data), hide_index=True)

with gallery:
    pseudo_runs = explore.runs_with_pseudo_labels(runs_dir()) if (~data.complete).any() else []
    pseudo_run = st.selectbox("Pseudo-labels of run", ["none", *pseudo_runs], key="pseudo-run",
                              help="A run that pseudo-labelled this file's incomplete rows: its points are drawn "
                                   "in magenta beside the real labels (green)") if pseudo_runs else "none"
    drawn = explore.pseudo_labels(data, runs_dir() / pseudo_run / "pseudo_labels.npz") if pseudo_run != "none" else {}
    if pseudo_run != "none" and not drawn:
        st.caption(f"Run '{pseudo_run}' pseudo-labelled none of this file's rows.")
    filters = ["all", "complete", "incomplete", *[f"missing {n}" for n in KEYPOINT_NAMES]]
    choice = st.selectbox("Show", (["pseudo-labelled"] if drawn else []) + filters)
    rows = np.array(sorted(drawn)) if choice == "pseudo-labelled" else explore.filter_rows(data, choice)
    shown = f"{len(rows)} face{'' if len(rows) == 1 else 's'}"
    st.caption(shown + (f"; {len(drawn)} pseudo-labelled by run '{pseudo_run}': model-drawn points "
                        "magenta, real labels green" if drawn else ""))
    if len(rows):
        pages = pictures.gallery_pages(rows, TILES_PER_PAGE)
        page = st.number_input("Page", 1, len(pages), 1, key=f"gallery-page-{choice}")  # a new filter starts on page 1
        shown = pages[page - 1]
        for start in range(0, len(shown), 6):
            columns = st.columns(6)
            for col, i in zip(columns, shown[start:start + 6]):
                col.image(pictures.face_picture(data.images[i], data.keypoints[i], pseudo=drawn.get(int(i))),
                          channels="BGR", caption=f"row {i + 1}" + (" (pseudo)" if int(i) in drawn else ""))
        i = st.selectbox("Look closer at", shown, format_func=lambda row: f"row {row + 1}")
        st.image(pictures.face_picture(data.images[i], data.keypoints[i], scale=5, labels=True,
                                      pseudo=drawn.get(int(i))), channels="BGR")
        st.caption(LEGEND)

with distributions:
    positions = explore.keypoint_positions(data)
    # 15 distinct colours, legend in schema order; many points make plotly use WebGL, so the mean face is
    # a WebGL trace too (an SVG trace would sit under the WebGL layer, invisible)
    fig = px.scatter(positions, x="x", y="y", color="keypoint", opacity=0.25, category_orders={"keypoint": KEYPOINT_NAMES},
                     color_discrete_sequence=px.colors.qualitative.Dark24, render_mode="webgl",
                     title="Where each keypoint falls (96x96 crop)")
    mean = explore.mean_shape(data)
    fig.add_trace(go.Scattergl(x=mean["x"], y=mean["y"], mode="markers", name="mean face", text=mean["keypoint"],
                               marker=dict(color="black", size=11, symbol="x", line=dict(color="white", width=1))))
    fig.update_xaxes(range=[0, 96], constrain="domain", title="x (crop px)")
    fig.update_yaxes(range=[96, 0], scaleanchor="x", constrain="domain", title="y (crop px)")
    fig.update_layout(height=650)
    st.plotly_chart(fig)
    turns = explore.head_turns(data)
    if len(turns):
        fig = px.histogram(turns, x="head turn", nbins=40,
                           title="Head turn: nose offset from the eyes' midpoint, in eye distances (0 = frontal)")
        st.plotly_chart(fig)
        st.caption(f"{(turns['head turn'] > 0.5).mean():.1%} of faces are turned past 0.5, where the model errs most. "
                   "The training page's 'Pose balance' shows such faces more often.")

with augmentation:
    st.caption("Uses the trainer's own augmentation code: what you see is what the model is trained on.")
    left, right = st.columns(2)
    sample = left.number_input("Sample row", 1, len(data), 1, key="aug-row") - 1
    do_flip = left.toggle("Horizontal flip", value=True, key="aug-flip")
    angle = right.slider("Rotation (degrees)", -30, 30, 0, key="aug-angle")
    scale = right.slider("Scale", 0.7, 1.3, 1.0, 0.05, key="aug-scale")
    image, keypoints = data.images[sample], data.keypoints[sample]
    augmented, moved = transform(image, keypoints, mirror=do_flip, angle_deg=angle, scale=scale)
    a, b = st.columns(2)
    a.image(pictures.face_picture(image, keypoints, scale=4, labels=True), channels="BGR", caption="original")
    b.image(pictures.face_picture(augmented, moved, scale=4, labels=True), channels="BGR",
            caption="augmented" + (" (flipped: left/right labels swapped)" if do_flip else ""))
    st.caption(LEGEND)

    st.subheader("Random batch")
    st.caption("Eight faces as the training pipeline draws them with these settings.")
    k1, k2, k3, k4 = st.columns(4)
    config = AugmentConfig(
        flip_probability=k1.slider("Flip probability", 0.0, 1.0, 0.5, key="aug-p"),
        max_rotation_deg=k2.slider("Max rotation", 0, 30, 15, key="aug-rot"),
        scale_range=k3.slider("Scale range", 0.7, 1.3, (0.9, 1.1), key="aug-sr"),
        max_shift_fraction=k4.slider("Max shift (of crop)", 0.0, 0.15, 0.05, key="aug-shift"),
    )
    seed = st.number_input("Seed", 0, 10_000, 0, key="aug-seed")
    batch_images, batch_keypoints = explore.augmented_sample(data, config, seed, size=8)
    columns = st.columns(8)
    for col, img, kp in zip(columns, batch_images, batch_keypoints):
        col.image(pictures.face_picture(img, kp), channels="BGR")
