"""Webcam: live sunglasses (or another effect) that follow every face, over WebRTC."""
from __future__ import annotations

from pages.ui import load_pipeline, page_setup  # isort: skip  (first: imports streamlit_webrtc before TensorFlow)

import av
import streamlit as st
from streamlit_webrtc import WebRtcMode, webrtc_streamer

from core.live import LiveProcessor, rtc_configuration
from core.overlays import EFFECTS

page_setup("Webcam")
st.title("Webcam")
st.caption("Press **START**, allow the camera, and the effect follows your face in real time. "
           "Frames are processed on this server; nothing is recorded.")

pipeline = load_pipeline()
if pipeline is None:
    st.stop()

# One processor per browser session; the video callback runs in another thread and only ever talks
# to this object (its own lock), never to st.session_state.
processor: LiveProcessor | None = st.session_state.get("live_processor")
if processor is None or processor.pipeline is not pipeline:
    processor = st.session_state["live_processor"] = LiveProcessor(pipeline)

controls, readout_column = st.columns([3, 1])
with controls:
    c1, c2 = st.columns(2)
    effect = c1.selectbox("Effect", EFFECTS, index=EFFECTS.index("sunglasses"))
    mirror = c2.toggle("Mirror", value=True, help="Show the picture like a mirror (as most video apps do).")
processor.update(effect=effect, mirror=mirror)


def on_frame(frame: av.VideoFrame) -> av.VideoFrame:
    out = processor.process(frame.to_ndarray(format="bgr24"))
    return av.VideoFrame.from_ndarray(out, format="bgr24")


with controls:
    webrtc_streamer(
        key="live",
        mode=WebRtcMode.SENDRECV,
        rtc_configuration=rtc_configuration(),
        media_stream_constraints={"video": {"width": {"ideal": 640}, "height": {"ideal": 480}}, "audio": False},
        video_frame_callback=on_frame,
        async_processing=True,
    )


@st.fragment(run_every=1.0)
def live_readout() -> None:
    s = processor.stats()
    st.metric("Processing", f"{s.ms_per_frame:.1f} ms/frame")
    st.metric("Frame rate", f"{s.fps:.0f} fps")
    st.metric("Faces", s.faces)
    st.caption(f"{s.frames} frames processed")


with readout_column:
    live_readout()
