"""Streamlit pages. Each pages/*.py file is a page of the app (Streamlit's pages directory); app.py is
the home page. The sidebar links are drawn by pages.ui.page_setup (labels and order of our choosing,
with `client.showSidebarNavigation = false`); what the pages share lives in pages/ui/, a subfolder,
so Streamlit does not list it as a page.
"""
