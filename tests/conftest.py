"""Shared fixtures: the shared data (skip when absent), a small model built by the test, and the
browser-test harness (a real `streamlit run` server + Debian Chromium through Playwright)."""
from __future__ import annotations

# streamlit_webrtc before TensorFlow, or Python segfaults (OpenSSL symbol clash).
import streamlit_webrtc  # noqa: F401  isort: skip

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream", "--allow-loopback-in-peer-connection",
]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip: tests on real photos and frames only run where the data is."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def photos(shared_data) -> Path:
    return shared_data / "photos"


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    """A small untrained keypoint model saved (with its ONNX twin) by the test session itself; its weights seeded,
    so a test that reads its points reads the same ones in every run."""
    import keras

    from trainer.architecture import build_model
    from trainer.export import save_model

    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    save_model(build_model(widths=(8, 16, 32, 64, 128)), path)
    return path


@pytest.fixture(scope="session")
def app_model_path(tiny_model_path) -> Path:
    """The model the app under test uses: the shipped one if present, else the tiny one."""
    from core.paths import SHIPPED_MODEL

    return SHIPPED_MODEL if SHIPPED_MODEL.is_file() else tiny_model_path


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StreamlitServer:
    """`streamlit run app.py` on a free port, stopped (with its children) on exit."""

    def __init__(self, env: dict[str, str], log_path: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        cmd = [sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"), "--server.headless", "true",
               "--server.port", str(self.port), "--server.address", "127.0.0.1",
               "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **env}, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_until_healthy()

    def _wait_until_healthy(self, timeout_s: float = 60) -> None:
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited early:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"streamlit did not answer within {timeout_s}s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
        self._log.close()


@pytest.fixture
def streamlit_app(tmp_path, app_model_path):
    """Factory: start the app with extra environment; every server is stopped after the test."""
    servers: list[StreamlitServer] = []

    def start(**env: str) -> StreamlitServer:
        base = {"FKS_MODEL": str(app_model_path), "FKS_RUNS_DIR": str(tmp_path / "runs")}
        server = StreamlitServer({**base, **env}, tmp_path / f"streamlit-{len(servers)}.log")
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()


@pytest.fixture(scope="session")
def playwright_driver():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (see .ci/run)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


def launch_chromium(playwright_driver, extra_args: tuple[str, ...] | list[str] = ()):
    """Debian Chromium driven by Playwright (the browser is the system's; nothing is downloaded)."""
    return playwright_driver.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=[*CHROMIUM_ARGS, *extra_args])


@pytest.fixture(scope="session")
def browser(playwright_driver):
    b = launch_chromium(playwright_driver)
    yield b
    b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    context.close()
