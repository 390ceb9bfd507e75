"""The UI end to end in a real browser: Debian's Chromium driven by Playwright.

The API and the UI run as real processes on free loopback ports; the browser trains a model
through the Models page, activates it, asks for recommendations, and screenshots every page
into test-artifacts/.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api_helpers import free_port
from tests.conftest import HEADER, PROJECT_ROOT

CHROMIUM = Path(os.environ.get("MUSICREC_CHROMIUM", "/usr/bin/chromium"))
SHOTS = PROJECT_ROOT / "test-artifacts"
API_URLS: list[str] = []  # the API the UI under test talks to
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _browser_missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found (apt-get install chromium; .ci/run installs it)"
    return None


def _wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{url}: process exited with {process.returncode}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not come up")


@pytest.fixture(scope="module")
def ui_url(tmp_path_factory) -> Iterator[str]:
    reason = _browser_missing()
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI requires the browser tests)")
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("ui")
    api_port, ui_port = free_port(), free_port()
    env = {
        **os.environ,
        "MUSICREC_DATABASE_URL": f"sqlite:///{tmp / 'registry.db'}",
        "MUSICREC_ARTIFACT_DIR": str(tmp / "artifacts"),
        "MUSICREC_JOB_POLL_SECONDS": "0.2",
        "MUSICREC_API_URL": f"http://127.0.0.1:{api_port}",
    }
    logs = [open(tmp / "api.log", "wb"), open(tmp / "ui.log", "wb")]  # noqa: SIM115
    api = subprocess.Popen(
        [sys.executable, "-m", "musicrec.cli", "serve", "--port", str(api_port)],
        env=env,
        stdout=logs[0],
        stderr=subprocess.STDOUT,
    )
    ui = subprocess.Popen(
        [sys.executable, "-m", "musicrec.cli", "ui", "--port", str(ui_port)],
        env=env,
        stdout=logs[1],
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_http(f"http://127.0.0.1:{api_port}/health", api)
        API_URLS[:] = [f"http://127.0.0.1:{api_port}"]
        _wait_http(f"http://127.0.0.1:{ui_port}/_stcore/health", ui)
        yield f"http://127.0.0.1:{ui_port}"
    finally:
        for process in (ui, api):
            process.send_signal(signal.SIGTERM)
        for process in (ui, api):
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        for handle in logs:
            handle.close()


@pytest.fixture(scope="module")
def page(ui_url):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        tab = context.new_page()
        tab.set_default_timeout(60_000)
        tab.goto(ui_url)
        yield tab
        browser.close()


def _shot(page, name: str) -> None:
    """Screenshot of the whole page: Streamlit scrolls inside the app, so grow the viewport."""
    height = page.evaluate(
        "Math.max(...[...document.querySelectorAll('*')].map(e => e.scrollHeight))"
    )
    page.set_viewport_size({"width": 1400, "height": min(int(height) + 100, 8000)})
    page.screenshot(path=str(SHOTS / name))
    page.set_viewport_size({"width": 1400, "height": 1000})


def _open(page, title: str) -> None:
    page.get_by_role("link", name=title).first.click()
    page.get_by_role("heading", name=title if title != "EDA" else "Exploring the listening log")


@pytest.mark.slow
def test_eda_page_shows_the_sample_and_its_plots(page):
    page.get_by_text("First 50 rows").wait_for()
    page.get_by_text("Pairs of source_type values: target shares").wait_for()
    images = page.locator("[data-testid='stImage'] img")
    images.nth(3).wait_for()
    assert images.count() == 4  # target histogram, two pair grids, the long tail
    _shot(page, "ui-eda.png")


@pytest.mark.slow
def test_eda_upload_of_a_bad_file_names_the_problem(page, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "u1,s1,tab,screen,type,7\n", encoding="utf-8")
    page.locator("input[type='file']").set_input_files(str(bad))
    page.get_by_text("bad.csv cannot be used").wait_for()
    page.get_by_text("target must be 0 or 1").first.wait_for()
    assert page.get_by_text("Traceback").count() == 0
    _shot(page, "ui-eda-error.png")


@pytest.mark.slow
def test_train_activate_and_recommend_through_the_pages(page):
    _open(page, "Models")
    page.get_by_text("Available models").wait_for()
    page.get_by_label("Model name").fill("browser-als")
    page.get_by_role("button", name="Train model").click()
    done = page.get_by_text("succeeded: model")
    done.wait_for(timeout=180_000)
    trained = done.inner_text().split("succeeded: model ")[1].split()[0]
    # The newest ready model is preselected: the one just trained.
    page.get_by_text(trained).first.wait_for()
    page.get_by_role("button", name="Set active model").click()
    page.get_by_text(f"{trained} is now the active model").wait_for()
    page.get_by_text("Offline metrics (per-user holdout)").wait_for()
    page.locator("[data-testid='stVegaLiteChart']").first.wait_for()
    models = httpx.get(f"{API_URLS[0]}/models", timeout=10).json()
    assert [m["name"] for m in models].count("browser-als") == 1  # one click, one model
    assert next(m for m in models if m["is_active"])["model_id"] == trained
    _shot(page, "ui-models.png")

    _open(page, "Recommendations")
    page.get_by_text(f"active model: {trained}").wait_for()
    page.get_by_role("button", name="Recommend", exact=True).click()
    page.get_by_text("Their history").wait_for()
    page.get_by_text("listener 0 ·").wait_for()
    _shot(page, "ui-recommendations.png")
    # The music-player idea: a listen on a recommendation is logged for the next training.
    page.get_by_role("button", name="listen").first.click()
    page.get_by_text("logged listen of").wait_for()

    _open(page, "Federated")
    page.get_by_role("button", name="Start federated run").wait_for()
    _shot(page, "ui-federated.png")
