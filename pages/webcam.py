"""Webcam: live sunglasses (or another effect) that follow every face, over WebRTC; snapshots and clips."""
from __future__ import annotations

from pages.ui import load_pipeline, page_setup  # isort: skip  (first: imports streamlit_webrtc before TensorFlow)

import time

import streamlit as st
from streamlit_webrtc import WebRtcMode, webrtc_streamer

from core.clips import CLIP_TTL_S, SessionClip, sweep
from core.live import LiveSettings
from core.overlays import EFFECTS
from pages.ui.live import ClipRecorder, StreamProcessor, rtc_configuration, snapshot_files

page_setup("Webcam")
st.title("Webcam")
st.caption("Press **START**, allow the camera, and the effect follows your face in real time. "
           "Frames are processed on this server; nothing is kept unless you take a snapshot or record a clip.")

pipeline = load_pipeline()
if pipeline is None:
    st.stop()

sweep()  # clips of any session older than CLIP_TTL_S
if "webcam_clip" not in st.session_state:
    st.session_state["webcam_clip"] = SessionClip()
clip: SessionClip = st.session_state["webcam_clip"]

# streamlit-webrtc 0.79 stops the stream of a component it believes skipped a script run (the person was on
# another page), judged by the session's run count. Streamlit counts a run when its end is *sent*, so a run
# that starts before the previous run's end went out reads a stale count, and the run after it looks like a
# return from another page: the stream stops with STOP still shown (seen after an effect change). When the
# last full run was this page, nothing was skipped, so that check is left out; coming from another page keeps it.
_live_context = st.session_state.get("live")
if st.session_state.get("previous_page") == "Webcam" and hasattr(_live_context, "_last_rendered_run_count"):
    _live_context._last_rendered_run_count = None

controls, readout_column = st.columns([3, 1])
with controls:
    c1, c2, c3 = st.columns(3)
    effect = c1.selectbox("Effect", EFFECTS, index=EFFECTS.index("sunglasses"))
    mirror = c2.toggle("Mirror", value=True, help="Show the picture like a mirror (as most video apps do).")
    record = c3.toggle("Record a clip", value=False,
                       help=f"Records what you see, from the next START to STOP, as an MP4 you can download. "
                            f"One clip per session, deleted after {CLIP_TTL_S // 60} minutes or when you leave.")
    # Called by streamlit-webrtc at every START (in its own thread): a new processor, so counts are per stream.
    ctx = webrtc_streamer(
        key="live",
        mode=WebRtcMode.SENDRECV,
        rtc_configuration=rtc_configuration(),
        media_stream_constraints={"video": {"width": {"ideal": 640}, "height": {"ideal": 480}}, "audio": False},
        video_processor_factory=lambda: StreamProcessor(pipeline, LiveSettings(effect=effect, mirror=mirror)),
        out_recorder_factory=(lambda: ClipRecorder(clip)) if record else None,
        async_processing=True,
    )

stream: StreamProcessor | None = ctx.video_processor
if stream is not None:
    stream.live.update(effect=effect, mirror=mirror)
    st.session_state["webcam_started"] = True


@st.fragment(run_every=1.0)
def live_readout() -> None:
    """Figures of the stream that is playing; after STOP it says so instead of showing the last figures."""
    current: StreamProcessor | None = ctx.video_processor
    if current is None:
        st.metric("Status", "Stopped" if st.session_state.get("webcam_started") else "Not started")
        st.caption("Press START to go live.")
        return
    s = current.live.stats()
    st.metric("Status", "Live")
    st.metric("ms/frame", f"{s.ms_per_frame:.1f}", help="Server time to process one frame (moving average).")
    st.metric("Frame rate", f"{s.fps:.0f} fps")
    st.metric("Faces", s.faces)
    st.caption(f"{s.frames} frames this stream, a face in {s.frames_with_face}")


with readout_column:
    live_readout()


@st.fragment(run_every=1.0)
def clip_status(shown: float | None) -> None:
    """Recording state, polled: the recorder starts just after START and closes its file just after STOP."""
    if ctx.video_processor is not None and clip.recording:
        st.caption("Recording… press STOP to finish the clip." + (" The last clip stays until then." if shown else ""))
    elif clip.finished_at != shown:
        st.rerun()  # a clip was finished (or replaced): the whole page shows it with its download
    elif clip.recording:
        st.caption("Finishing the clip…")
    elif shown is None:
        st.caption("Turn on **Record a clip**, then START and STOP.")


snapshot_column, clip_column = controls.columns(2)
with snapshot_column:
    st.subheader("Snapshot")
    if st.button("Take a snapshot", help="The current frame, effect drawn, and its keypoints."):
        taken = stream.live.snapshot() if stream is not None else None
        if taken is None:
            st.warning("No frame yet: press START and wait until the video plays.")
        else:
            st.session_state["webcam_snapshot"] = snapshot_files(taken)
    if "webcam_snapshot" in st.session_state:
        png, csv = st.session_state["webcam_snapshot"]
        st.image(png, caption="Snapshot")
        st.download_button("Download the frame (PNG)", png, "snapshot.png", "image/png", on_click="ignore")
        st.download_button("Download its keypoints (CSV)", csv, "snapshot-keypoints.csv", "text/csv",
                           on_click="ignore")
with clip_column:
    st.subheader("Clip")
    finished_at = clip.finished_at
    if finished_at is not None:
        data = clip.path.read_bytes()
        st.video(data, format="video/mp4")
        st.caption(f"Recorded at {time.strftime('%H:%M:%S', time.localtime(finished_at))}, "
                   f"{len(data) / 1e6:.1f} MB. A new recording replaces it.")
        st.download_button("Download the clip (MP4)", data, "webcam-clip.mp4", "video/mp4", on_click="ignore")
    clip_status(finished_at)
