"""Streamlit pages, routed by app.py with st.navigation.

The page scripts live in pages/views/, not directly in pages/: Streamlit treats top-level .py files
in pages/ as legacy auto-discovered pages and, on a server's first request to a page URL, would run
that file without app.py (no page config, no import-order guard, a sidebar listing every module).
"""
