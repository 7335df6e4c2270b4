"""Facial Keypoints Studio: `streamlit run app.py`. This file is the home page: what the app does,
where to go, and which model is active. The other pages are pages/*.py."""
from pages.ui import display_command, model_problem_message, model_summary, page_setup  # isort: skip  (imports streamlit_webrtc first)
import json

import pandas as pd
import streamlit as st

from core.card import read_card
from core.registry import active_model_path

page_setup("Home")
st.title("Facial Keypoints Studio")
st.write(
    "Finds faces in a picture (OpenCV's Haar cascade), predicts **15 facial keypoints** per face with a "
    "small CNN (eyes, eyebrows, nose tip, mouth), and puts them to use: keypoint plots, sunglasses and other "
    "overlays, blur or pixelation to hide identities, live on a webcam. You can also explore the training "
    "data and train a new model while watching its loss curves."
)

st.subheader("Start here")
start = st.columns(3)
start[0].page_link("pages/photo.py", label="**1. Try a photo**: a sample or your own, with sunglasses or keypoints",
                   icon="🖼️")
start[1].page_link("pages/webcam.py", label="**2. Go live**: the same effects on your webcam", icon="🎥")
start[2].page_link("pages/training.py", label="**3. Train your own model** and make it the app's", icon="🏋️")

st.subheader("Pages")
st.markdown(
    "- **Home**: this page.\n"
    "- **Photo**: upload a photo (or take a snapshot), see every face with keypoints, sunglasses, a moustache "
    "or a hat, blur or pixelate faces, and download the image and the keypoints (CSV, JSON).\n"
    "- **Webcam**: live sunglasses, moustache, hat, keypoints, blur or pixelation that follow every face on "
    "your camera, in real time (WebRTC).\n"
    "- **Dataset**: load a Kaggle-format training file and see its rows, missing labels, faces with keypoints, "
    "where each keypoint falls, and what flip / rotation / scaling do to a face.\n"
    "- **Training**: start the training recipe from the browser, watch live loss curves, cancel, compare runs, "
    "and make a finished model the one the app uses.\n"
    "- Command line: `python -m core annotate FOLDER --out OUT` does the same for whole folders; "
    "`python -m trainer` imports data, trains and evaluates models."
)

st.subheader("Active model")
path = active_model_path()
problem = model_problem_message(path)
if problem:
    st.error(problem)
else:
    summary = model_summary(path)
    st.table(pd.DataFrame({"value": [str(v) for v in summary.values()]}, index=list(summary)))
    card = read_card(path)
    if card.to_dict():
        commands = card.reproduce or ([card.command] if card.command else [])
        if commands:
            st.caption("Made by (the card's `reproduce` commands, in order):")
            st.code("\n".join(display_command(c) for c in commands), language="bash", wrap_lines=True)
        st.download_button("Download the model card (JSON)", json.dumps(card.to_dict(), indent=1), f"{path.stem}.json",
                           "application/json", on_click="ignore")
        with st.expander("Model card (JSON)"):
            with st.container(height=400):  # the card is ~600 lines: it scrolls inside, not down the page
                st.json(card.to_dict(), expanded=1)
    else:
        st.caption("This model has no card.")
