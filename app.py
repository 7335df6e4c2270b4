"""Facial Keypoints Studio: `streamlit run app.py`.

The entry point only routes: every page lives in pages/ and stays thin over core/ and trainer/.
"""
# streamlit_webrtc must be imported before anything that may import TensorFlow: both ship
# OpenSSL symbols and the other order crashes the interpreter (see DEVELOPERS.md).
import streamlit_webrtc  # noqa: F401  isort: skip
import streamlit as st

st.set_page_config(page_title="Facial Keypoints Studio", page_icon="🙂", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon="🏠", default=True),
    st.Page("pages/photo.py", title="Photo", icon="🖼️", url_path="photo"),
    st.Page("pages/webcam.py", title="Webcam", icon="🎥", url_path="webcam"),
    st.Page("pages/dataset.py", title="Dataset", icon="🗂️", url_path="dataset"),
]
st.navigation(PAGES).run()
