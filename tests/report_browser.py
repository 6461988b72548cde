"""Open a report in the system Chromium (headless, through playwright; no browser is ever
downloaded) with every network request refused, and say what drew."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
INSTALL = ("install the Debian package `chromium` (apt-get install -y chromium; .ci/run does "
           "it when it can) and playwright (pip install -e '.[test]')")


@dataclass(frozen=True)
class Seen:
    charts: int  # chart containers in the page
    drawn: int  # of them, those plotly.js drew an SVG in
    errors: list[str]  # console errors and uncaught page errors
    refused: list[str]  # requests to anything but the file itself
    dialogs: list[str]  # alert()/confirm() opened (escaped text never runs)
    title: str


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").is_file():
        found = "/usr/bin/chromium"
    if found is None:
        pytest.skip(f"no chromium on this machine: {INSTALL}")
    return found


def open_offline(page_file: Path, screenshot: Path) -> Seen:
    sync_api = pytest.importorskip("playwright.sync_api", reason=f"no playwright: {INSTALL}")
    exe = chromium()
    errors: list[str] = []
    refused: list[str] = []
    dialogs: list[str] = []

    def route(r: object) -> None:
        url = r.request.url  # type: ignore[attr-defined]
        if url.startswith("file://"):
            r.continue_()  # type: ignore[attr-defined]
        else:
            refused.append(url)
            r.abort()  # type: ignore[attr-defined]

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=ARGS)
        try:
            ctx = browser.new_context(viewport={"width": 1300, "height": 900}, offline=True)
            page = ctx.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.route("**/*", route)
            page.goto(page_file.resolve().as_uri())
            page.wait_for_load_state("load")
            charts = page.evaluate("document.querySelectorAll('div.chart').length")
            drawn = page.evaluate("Array.from(document.querySelectorAll('div.chart'))"
                                  ".filter(d => d.querySelector('svg.main-svg')).length")
            title = page.title()
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return Seen(charts, drawn, errors, refused, dialogs, title)
