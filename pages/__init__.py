"""Streamlit pages (routed by app.py) and their shared helpers in pages/common.py."""
