"""What every browser test does after each step it takes: wait until Streamlit has finished the
script run that the step started, then fail if the page shows an exception.

A widget change only starts a rerun; asserting right after it would look at the old page. The app
root carries `data-test-script-state` (running / notRunning), which is what Streamlit's own
Playwright tests wait on.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

if TYPE_CHECKING:
    from tests.conftest import StreamlitServer

APP_IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
EXCEPTION = '[data-testid="stException"]'


def assert_no_exception(page: Page) -> None:
    """Fail with the shown message when Streamlit displays an exception element or a traceback."""
    shown = page.locator(EXCEPTION)
    if shown.count():
        raise AssertionError("the page shows a Streamlit exception:\n" + shown.first.inner_text()[:2000])
    traceback = page.get_by_text("Traceback (most recent call last)")
    if traceback.count():
        raise AssertionError("the page shows a traceback:\n" + traceback.first.inner_text()[:2000])


#: The app while a script run is asked for or running.
APP_BUSY = '[data-testid="stApp"]:not([data-test-script-state="notRunning"])'
#: How long after a step its rerun may take to show: a widget change sends its request with no state shown until
#: the server starts the run (Streamlit 1.67 sets "rerunRequested" only for explicit reruns), so a step that
#: starts none (a download, a click outside a widget) is told apart from one whose run has not shown yet by time.
RERUN_START_MS = 250
#: How long after a run ends a run it asks for (st.rerun, a fragment) may take to show.
CHAINED_RUN_MS = 100


def busy_within(page: Page, ms: int) -> bool:
    """Whether a script run shows within `ms`; returns as soon as one does."""
    try:
        page.wait_for_selector(APP_BUSY, timeout=ms)
    except PlaywrightTimeout:
        return False
    return True


def settle(page: Page, timeout_ms: int = 90_000) -> None:
    """Wait for the rerun a step started, and any run it chains to, to finish (and the page to be connected),
    then check for exceptions. Waits on the app's script state; a run that shows early ends the wait early."""
    busy_within(page, RERUN_START_MS)
    page.wait_for_selector(APP_IDLE, timeout=timeout_ms)
    for _ in range(3):  # a few chained runs; a page refreshing on a timer (a training run's live view) never stops
        if not busy_within(page, CHAINED_RUN_MS):
            break
        page.wait_for_selector(APP_IDLE, timeout=timeout_ms)
    assert_no_exception(page)


def screenshot(page: Page, path: str) -> None:
    """The whole page as one PNG to look at. Streamlit scrolls inside its own container, so full_page
    alone shows one screen: the viewport is made as tall as the content for the shot."""
    size = page.viewport_size
    assert size is not None, "the page has a fixed viewport (new_context sets one)"
    height = page.evaluate("Math.max(...[...document.querySelectorAll('*')].map(e => e.scrollHeight))")
    page.set_viewport_size({"width": size["width"], "height": min(int(height) + 50, 16_000)})
    page.wait_for_timeout(500)
    page.screenshot(path=path, full_page=True)
    page.set_viewport_size(size)


def open_dropdown(page: Page, label: str) -> None:
    """Open the selectbox labelled `label` and leave its options showing."""
    box = page.get_by_role("combobox", name=label, exact=True)
    listbox = page.get_by_role("listbox")
    # A click on a selectbox that kept the focus from an earlier choice leaves it closed (seen on pages without any
    # timer too); the keyboard opens it. On a loaded machine the list can take seconds to show: try a few times.
    for _ in range(4):
        box.click()
        if not listbox.is_visible():
            box.press("ArrowDown")
        try:
            listbox.wait_for(timeout=10_000)
            return
        except PlaywrightTimeout:
            continue
    listbox.wait_for()


def choose(page: Page, label: str, option: str | int) -> None:
    """Pick `option` (its text, or its position) in the selectbox labelled `label`, then settle()."""
    item = (page.get_by_role("option").nth(option) if isinstance(option, int)
            else page.get_by_role("option", name=option, exact=True))
    # The open list can be redrawn under the pointer (a rerun the last step started), so that the option never
    # holds still for the click: let the rerun end first, and if it still moves, close the list and open it again.
    settle(page)
    for _ in range(3):
        open_dropdown(page, label)
        try:
            item.click(timeout=15_000)
            break
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    else:
        open_dropdown(page, label)
        item.click()
    settle(page)


@contextlib.contextmanager
def webcam_page(streamlit_app: Callable, playwright_driver, camera: Path, data_dir: Path,
                timeout_ms: int = 30_000) -> Iterator[tuple[Page, StreamlitServer]]:
    """(page, server): the Webcam page, settled, in a Chromium whose fake camera plays `camera` (.y4m), served by a
    new app whose WebRTC stays on loopback (tests/loopback_ice); the browser is closed after."""
    from tests.conftest import REPO, launch_chromium

    server = streamlit_app(FKS_DATA_DIR=str(data_dir), PYTHONPATH=str(REPO / "tests" / "loopback_ice"))
    browser = launch_chromium(playwright_driver, [f"--use-file-for-fake-video-capture={camera}"])
    try:
        page = browser.new_context(viewport={"width": 1400, "height": 1400}, accept_downloads=True).new_page()
        page.set_default_timeout(60_000)
        page.goto(server.url + "/webcam")
        expect(page.get_by_role("heading", name="Webcam")).to_be_visible(timeout=timeout_ms)
        settle(page)
        yield page, server
    finally:
        browser.close()
