"""``dryneedle report``: one static, reproducible HTML page, checked in a real headless browser.

The browser test drives the system Chromium (``/usr/bin/chromium``) with Playwright; it never
downloads a browser. Without Chromium it is skipped, except in CI (``CI`` set), where it fails.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from dryneedle.aftercare import PUBLISHED_RATES
from dryneedle.cli import main
from dryneedle.outputs import wilson_interval

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples" / "sessions.jsonl"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytest.importorskip("matplotlib", reason="the report extra (matplotlib)")


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("report")
    html_path, summary_path = out / "report.html", out / "summary.json"
    code = main(["report", str(EXAMPLES), "-o", str(html_path), "--summary-json",
                 str(summary_path), "-q"])
    assert code == 0
    return html_path, json.loads(summary_path.read_text(encoding="utf-8"))


def _embedded(text: str) -> Any:
    m = re.search(r'<script type="application/json" id="summary">(.*?)</script>', text, re.S)
    assert m
    return json.loads(m.group(1))


def test_page_is_static_and_embeds_its_summary(page: tuple[Path, dict[str, Any]]) -> None:
    html_path, summary = page
    text = html_path.read_text(encoding="utf-8")
    assert _embedded(text) == summary
    assert text.count("<svg") == 5
    assert "Content-Security-Policy" in text
    # Nothing is fetched: no external script, stylesheet, image or font.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "<link" not in text
    assert "@import" not in text
    assert "<script src" not in text


def test_summary_counts(page: tuple[Path, dict[str, Any]]) -> None:
    _, summary = page
    v = summary["validation"]
    assert (v["records"], v["valid"], v["invalid"], v["findings"]) == (300, 209, 91, 830)
    assert sum(v["decisions"].values()) == 300
    assert summary["inputs"] == [{"name": str(EXAMPLES), "records": 300}]
    assert len(summary["policy"]["fingerprint"]) == 16
    ae = summary["adverse_events"]
    assert (ae["sessions"], ae["records_left_out"]) == (276, 24)
    bruising = ae["kinds"]["bruising"]
    assert bruising["events"] == 17
    assert [bruising["ci95_low"], bruising["ci95_high"]] == list(
        wilson_interval(17, 276) or ())
    published = {(p.source, p.kind.value) for p in PUBLISHED_RATES if p.kind is not None}
    shown = {(src, kind) for kind, e in ae["kinds"].items() for src in e["published"]}
    assert shown == published
    assert summary["techniques"]["deep"]["insertions"] > 0


def test_page_is_reproducible(tmp_path: Path, page: tuple[Path, dict[str, Any]]) -> None:
    again = tmp_path / "again.html"
    assert main(["report", str(EXAMPLES), "-o", str(again), "-q", "-j", "2"]) == 0
    assert again.read_bytes() == page[0].read_bytes()


def test_report_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "r")]) == 2
    assert main(["report", str(EXAMPLES), "-o", str(tmp_path / "no" / "dir" / "r.html")]) == 2
    assert "dryneedle: error:" in capsys.readouterr().err


def _chromium_or_skip() -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {CHROMIUM} is missing: install chromium (apt-get)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); required in CI")


def _lookup(data: Any, key: str) -> Any:
    """Follow a dotted ``data-key`` (keys may hold dots, e.g. finding codes)."""
    for n in range(len(key), 0, -1):
        head = key[:n]
        if isinstance(data, dict) and head in data:
            rest = key[n + 1:]
            return data[head] if not rest else _lookup(data[head], rest)
    raise KeyError(key)


def _shown(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    if fmt == "pct":
        return f"{value * 100:.2f} %"
    return str(value)


def test_page_in_a_headless_browser(page: tuple[Path, dict[str, Any]]) -> None:
    """The page renders, logs no error, shows its SVGs, and its numbers are the summary's."""
    _chromium_or_skip()
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright (dev extra)")
    html_path, summary = page
    problems: list[str] = []
    requests: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1200, "height": 900})
            tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            tab.on("pageerror", lambda e: problems.append(str(e)))
            tab.on("request", lambda r: requests.append(r.url))
            tab.goto(html_path.as_uri())
            tab.wait_for_load_state("load")
            assert tab.title() == "dryneedle validation report"
            svgs = tab.locator("svg")
            assert svgs.count() == 5
            for n in range(5):
                box = svgs.nth(n).bounding_box()
                assert box is not None
                assert box["width"] > 100
                assert box["height"] > 50
            embedded = tab.evaluate(
                "JSON.parse(document.getElementById('summary').textContent)")
            cells = tab.eval_on_selector_all(
                "[data-key]", "els => els.map(e => [e.dataset.key, e.dataset.format, "
                "e.textContent])")
        finally:
            browser.close()
    assert problems == []
    assert requests == [html_path.as_uri()]
    assert embedded == summary
    assert len(cells) > 60
    for key, fmt, text in cells:
        assert text == _shown(_lookup(summary, key), fmt), key
    keys = {key for key, _, _ in cells}
    assert {"validation.records", "validation.invalid", "policy.fingerprint",
            "adverse_events.kinds.bruising.ci95_low",
            "adverse_events.kinds.bruising.published.brady-2014.display"} <= keys
