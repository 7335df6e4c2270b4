"""Test-only: make aioice offer 127.0.0.1 as its ICE host candidate.

aioice skips loopback addresses, so where only loopback is up (CI) the server offers no candidate
and WebRTC never connects. The webcam browser test puts this folder on the server's PYTHONPATH and
runs Chromium with --allow-loopback-in-peer-connection. The app itself never loads this file.
"""
try:
    import aioice.ice as _ice

    _ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"] if use_ipv4 else []
except ImportError:  # streamlit-webrtc not installed: nothing to patch
    pass
