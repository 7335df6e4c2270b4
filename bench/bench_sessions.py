"""Concurrent browser sessions on the Photo page: wrong face counts, page errors and server memory.

    python bench/bench_sessions.py [--sessions 5] [--seconds 120] [--baseline-seconds 120]

Starts `streamlit run app.py` on a free loopback port (nothing else is contacted) and drives the Photo
page from Debian Chromium (Playwright, one browser, one context per session): each session uploads
james.jpg (1 face) and obamas4.jpg (2 faces) in turn and reads "Faces found". Every upload carries a
few unique bytes after the image's end, so the page's result cache never answers for the detector.
Baseline in the same run: one session alone, then `--sessions` at once against the same server.
Prints, per phase: results, wrong face counts, page errors (Streamlit exceptions or error boxes),
results per second, and the server's peak RSS (the process tree, sampled every 0.2 s).
Needs ../shared/data/photos. Exits 1 when any result was wrong or any page showed an error.
"""
from __future__ import annotations

# streamlit_webrtc before TensorFlow (imported by tests.conftest's helpers), or Python segfaults.
import streamlit_webrtc  # noqa: F401  isort: skip

import argparse
import asyncio
import re
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psutil

from core.paths import SHARED_DATA
from core.registry import active_model_path
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, StreamlitServer
from tests.e2e import APP_IDLE, EXCEPTION

PHOTOS = {"james.jpg": 1, "obamas4.jpg": 2}  # faces the detector finds alone, at the default sensitivity


@dataclass
class Phase:
    sessions: int
    results: int = 0
    wrong: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    peak_rss_mb: float = 0.0


class PeakRss:
    """The largest RSS of a process and its children, sampled in a thread until stopped."""

    def __init__(self, pid: int, every_s: float = 0.2):
        self._process, self._every, self.peak = psutil.Process(pid), every_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                tree = [self._process, *self._process.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in tree))
            except psutil.Error:
                pass
            self._stop.wait(self._every)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 2**20


async def _settle(page) -> None:
    await page.wait_for_timeout(250)
    await page.wait_for_selector(APP_IDLE, timeout=120_000)
    await page.wait_for_timeout(100)
    await page.wait_for_selector(APP_IDLE, timeout=120_000)


async def _session(browser, url: str, photos: dict[str, bytes], deadline: float, phase: Phase, number: int) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto(url + "/photo")
    await _settle(page)
    metric = page.locator('[data-testid="stMetric"]', has_text="Faces found")
    upload, k = page.locator("input[type=file]").first, 0
    while time.monotonic() < deadline:
        name = list(photos)[(k + number) % len(photos)]
        nonce = f"session {number} upload {k} {time.time_ns()}".encode()
        await upload.set_input_files({"name": name, "mimeType": "image/jpeg", "buffer": photos[name] + nonce})
        k += 1
        try:  # the upload's rerun has drawn the page when the photo's caption names it (consecutive names differ)
            shown = page.get_by_text(f"{name} (").or_(page.locator(EXCEPTION))
            await shown.first.wait_for(timeout=120_000)
            await _settle(page)
            await metric.wait_for(timeout=60_000)
        except Exception as exc:  # noqa: BLE001  a page that never shows the count is an error too
            phase.errors.append(f"session {number}, {name}: {type(exc).__name__}")
            continue
        failed = page.locator(f'{EXCEPTION}, [data-testid="stAlertContentError"]')
        if await failed.count():
            text = " ".join((await failed.first.inner_text()).split())
            phase.errors.append(f"session {number}, {name}: {text[:200]}")
            continue
        found = int(re.findall(r"\d+", await metric.inner_text())[-1])
        phase.results += 1
        if found != PHOTOS[name]:
            phase.wrong.append(f"session {number}, {name}: {found} faces instead of {PHOTOS[name]}")
    await context.close()


async def _run_phase(url: str, server_pid: int, photos: dict[str, bytes], sessions: int, seconds: float) -> Phase:
    from playwright.async_api import async_playwright

    phase = Phase(sessions)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        rss = PeakRss(server_pid)
        start = time.monotonic()
        await asyncio.gather(*(_session(browser, url, photos, start + seconds, phase, n) for n in range(sessions)))
        phase.seconds = time.monotonic() - start
        phase.peak_rss_mb = rss.stop()
        await browser.close()
    return phase


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--baseline-seconds", type=float, default=None, help="the one-session phase (default: --seconds)")
    ap.add_argument("--model", default=str(active_model_path()))
    args = ap.parse_args()
    folder = SHARED_DATA / "photos"
    if not all((folder / name).is_file() for name in PHOTOS):
        print(f"needs {', '.join(PHOTOS)} in {folder}")
        return 2
    photos = {name: (folder / name).read_bytes() for name in PHOTOS}
    with tempfile.TemporaryDirectory() as tmp:
        server = StreamlitServer({"FKS_MODEL": args.model, "FKS_RUNS_DIR": str(Path(tmp) / "runs")},
                                 Path(tmp) / "streamlit.log")
        try:
            baseline = asyncio.run(_run_phase(server.url, server.proc.pid, photos, 1,
                                              args.baseline_seconds or args.seconds))
            loaded = asyncio.run(_run_phase(server.url, server.proc.pid, photos, args.sessions, args.seconds))
        finally:
            server.stop()
    print(f"{'phase':<12} {'results':>8} {'wrong':>6} {'errors':>7} {'per s':>6} {'peak RSS MB':>12}")
    for label, ph in (("1 session", baseline), (f"{args.sessions} sessions", loaded)):
        print(f"{label:<12} {ph.results:>8} {len(ph.wrong):>6} {len(ph.errors):>7} {ph.results / ph.seconds:>6.2f} "
              f"{ph.peak_rss_mb:>12.0f}")
    print(f"throughput {args.sessions} sessions / 1 session: "
          f"{(loaded.results / loaded.seconds) / max(baseline.results / baseline.seconds, 1e-9):.2f}x; "
          f"peak RSS ratio {loaded.peak_rss_mb / max(baseline.peak_rss_mb, 1e-9):.2f}x")
    for line in (baseline.wrong + loaded.wrong + baseline.errors + loaded.errors)[:10]:
        print("  ", line)
    return 1 if baseline.wrong or loaded.wrong or baseline.errors or loaded.errors else 0


if __name__ == "__main__":
    sys.exit(main())
