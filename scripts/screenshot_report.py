"""Render the HTML report of the example data and save a screenshot for the docs.

Usage (from the repository root, with the ``report`` extra, playwright and a system
Chromium at /usr/bin/chromium; no browser is downloaded)::

    python scripts/screenshot_report.py [docs/_static/report-screenshot.png]

It runs ``dryneedle report examples/sessions.jsonl`` into a temporary folder, opens the page
in headless Chromium and saves a PNG of its top part.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from dryneedle.cli import main

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def screenshot(out: Path, *, height: int = 1500) -> None:
    """Write the report of the example data and save its screenshot to ``out``."""
    with tempfile.TemporaryDirectory() as tmp:
        page_path = Path(tmp) / "report.html"
        code = main(["report", str(ROOT / "examples" / "sessions.jsonl"), "-o", str(page_path),
                     "-q"])
        if code != 0:
            raise SystemExit(code)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": height})
            page.goto(page_path.as_uri())
            page.screenshot(path=str(out), clip={"x": 0, "y": 0, "width": 1200,
                                                 "height": height})
            browser.close()


if __name__ == "__main__":
    default = ROOT / "docs" / "_static" / "report-screenshot.png"
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    screenshot(target)
    print(target)
