"""Shared pieces of the real-browser tests: Debian's chromium driven by Playwright, and a signed-in
admin console page.

``browser_page`` yields a Playwright page in headless chromium; a test that fails leaves
``failure.png`` beside its other screenshots (``shots``, printed at the end). ``console_login``
signs a user in on the admin console's login page."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM) and os.environ.get("CI") != "true",
                                    reason="Debian's chromium is not installed (.ci/run installs it)")


@pytest.fixture
def shots(tmp_path: Path) -> Iterator[Path]:
    """Where a browser test keeps its screenshots (test artifacts; the path is printed)."""
    path = tmp_path / "screenshots"
    path.mkdir()
    yield path
    print(f"\nscreenshots: {path}")


@pytest.fixture
def browser_page(shots: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        try:
            yield page
            failed = getattr(request.node, "_call_failed", False)
            if failed:
                page.screenshot(path=str(shots / "failure.png"), full_page=True)
        finally:
            browser.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        item._call_failed = True  # type: ignore[attr-defined]


def console_login(page: Any, url: str, email: str, password: str) -> None:
    """Open the admin console's login page at ``url`` and sign in as ``email``."""
    from playwright.sync_api import expect

    page.goto(url + "/")
    expect(page.locator("input[name=password]")).to_be_visible(timeout=30_000)
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
