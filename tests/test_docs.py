"""The documentation: builds offline with warnings as errors, runs its examples, and is complete.

The docs are built once per session, exactly as CI builds them (``sphinx -n -W --keep-going``,
then the doctest builder), into a temporary folder. The tests then check that what is generated
from the code is all there: every registered rule in the rule catalog, every source in the
bibliography, every policy limit, every CLI sub-command, every public name in the API
reference, and diagrams drawn from the registry and the anatomy catalog.
"""

from __future__ import annotations

import argparse
import html
import importlib
import json
import pkgutil
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import dryneedle
from dryneedle.catalog import MUSCLES
from dryneedle.cli import build_parser
from dryneedle.findings import Decision, all_rules
from dryneedle.model import Region
from dryneedle.policy import DEFAULT_POLICY, POLICIES
from dryneedle.sources import SOURCES

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
TUTORIALS = ("tutorials/app-developers", "tutorials/data-teams", "tutorials/ehr-integrators")
LUNG_RED = "#b42318"  # docs/_ext/dn_diagrams.py: LUNG

pytestmark = pytest.mark.slow


def _sphinx(builder: str, out: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sphinx", *options, "-b", builder, "-d", str(out / ".doctrees"),
         str(DOCS), str(out / builder)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )


@pytest.fixture(scope="session")
def html_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The HTML build, made with ``-n -W --keep-going`` (fails the tests on any warning)."""
    out = tmp_path_factory.mktemp("docs")
    proc = _sphinx("html", out, "-n", "-W", "--keep-going", "-q")
    assert proc.returncode == 0, f"sphinx html build failed:\n{proc.stderr}"
    return out / "html"


@pytest.fixture(scope="session")
def doctest_output(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The doctest build's report (every ``{doctest}`` block and docstring example)."""
    out = tmp_path_factory.mktemp("doctest")
    proc = _sphinx("doctest", out, "-q")
    report = (out / "doctest" / "output.txt").read_text(encoding="utf-8")
    assert proc.returncode == 0, f"sphinx doctest build failed:\n{proc.stderr}\n{report}"
    return report


def make_id(text: str) -> str:
    """The HTML id docutils makes of a name (``rule-screening.pregnancy`` ->
    ``rule-screening-pregnancy``), for the ASCII ids dryneedle uses."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _page(html_dir: Path, name: str) -> str:
    return (html_dir / f"{name}.html").read_text(encoding="utf-8")


def _text(page: str) -> str:
    """The text of an HTML page, tags removed and entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def _public_modules() -> list[str]:
    names = ["dryneedle"]
    for info in pkgutil.iter_modules(dryneedle.__path__):
        if not info.name.startswith("_"):
            names.append(f"dryneedle.{info.name}")
    return names


def test_landing_page_offers_the_three_entry_points(html_dir: Path) -> None:
    """The landing page links the tutorial of each audience and the safety page."""
    index = _page(html_dir, "index")
    for page in (*TUTORIALS, "safety"):
        assert f'href="{page}.html"' in index, page


def test_every_registered_rule_is_in_the_rule_catalog(html_dir: Path) -> None:
    """Each registered rule has its anchor, id, title and sources on the generated page."""
    page = _page(html_dir, "rules")
    text = _text(page)
    rules = all_rules()
    assert rules
    for rule in rules:
        assert f'id="{make_id("rule-" + rule.id)}"' in page, rule.id
        assert rule.title in text, rule.id
        assert rule.rationale in text, rule.id
        for source in rule.sources:
            assert f'href="bibliography.html#{make_id("source-" + source)}"' in page, source


def test_rule_catalog_shows_each_policy_and_its_justifications(html_dir: Path) -> None:
    """Every built-in policy has a column, and every override's justification is shown."""
    text = _text(_page(html_dir, "rules"))
    for policy in POLICIES.values():
        assert f"{policy.name} policy" in text
        for override in policy.rule_overrides:
            assert override.justification in text, override.rule_id


def test_every_policy_limit_is_documented(html_dir: Path) -> None:
    """Each numeric limit of the policy has an anchor on the rule catalog page."""
    page = _page(html_dir, "rules")
    for limit in DEFAULT_POLICY.limits():
        assert f'id="{make_id("limit-" + limit.name)}"' in page, limit.name


def test_every_source_is_in_the_bibliography(html_dir: Path) -> None:
    """Each registered source has its anchor, reference and grade in the bibliography."""
    page = _page(html_dir, "bibliography")
    text = _text(page)
    for source in SOURCES.values():
        assert f'id="{make_id("source-" + source.id)}"' in page, source.id
        assert source.reference in text, source.id
        assert source.supports in text, source.id
    assert "How we choose sources" in text
    assert "clinic-policy default" in text


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_screening_flow_diagram_is_drawn_from_the_registry(html_dir: Path, policy: str) -> None:
    """The flow diagram names every decision and every rule that has a screening effect."""
    svg = (html_dir / "_images" / f"screening-flow-{policy}.svg").read_text(encoding="utf-8")
    ET.fromstring(svg)  # well-formed
    for decision in Decision:
        assert decision.value in svg
    for rule in all_rules():
        if rule.effect is not None:
            assert f'data-rule="{rule.id}"' in svg, rule.id


def test_region_map_shows_every_region_and_highlights_over_lung_muscles(html_dir: Path) -> None:
    """The region map has every region and muscle; the over-lung ones are drawn highlighted."""
    svg = (html_dir / "_images" / "region-map.svg").read_text(encoding="utf-8")
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    regions = {g.get("data-region") for g in root.iter(f"{ns}g")}
    assert regions == {r.value for r in Region}
    lines = {t.get("data-muscle"): t for t in root.iter(f"{ns}text") if t.get("data-muscle")}
    assert set(lines) == set(MUSCLES)
    for muscle in MUSCLES.values():
        fills = {span.get("fill") for span in lines[muscle.id]}
        assert (LUNG_RED in fills) is muscle.over_lung, muscle.id


def test_cli_reference_lists_every_subcommand(html_dir: Path) -> None:
    """The CLI page has a section with the generated help of each sub-command."""
    page = _page(html_dir, "cli")
    names = [
        name
        for action in build_parser()._actions  # argparse has no public accessor
        if isinstance(action, argparse._SubParsersAction)
        for name in action.choices
    ]
    assert names
    for name in names:
        assert f'id="cli-{name}"' in page, name
        assert f"usage: dryneedle {name}" in _text(page), name


@pytest.mark.parametrize("module", _public_modules())
def test_api_reference_documents_every_public_name(html_dir: Path, module: str) -> None:
    """Every public module has an API page documenting each name of its ``__all__``."""
    page_name = "api/" + ("dryneedle" if module == "dryneedle" else module.split(".", 1)[1])
    path = html_dir / f"{page_name}.html"
    assert path.exists(), f"no API page for {module}: add docs/{page_name}.md"
    page = path.read_text(encoding="utf-8")
    mod = importlib.import_module(module)
    for name in mod.__all__:
        assert f'id="{module}.{name}"' in page, f"{module}.{name} is not documented"


def test_record_format_page_renders_the_shipped_schema(html_dir: Path) -> None:
    """The record format page shows the JSON Schema generated from the models."""
    from dryneedle.records import json_schema  # noqa: PLC0415

    text = _text(_page(html_dir, "record-format"))
    schema = json_schema()
    assert schema["$id"] in text
    for name in schema["$defs"]:
        assert f"#/$defs/{name}" in text, name


def test_record_format_example_is_the_contract_example() -> None:
    """The annotated example in the docs is the SPEC §6 record the tests use."""
    docs = json.loads((DOCS / "_static" / "session-record.json").read_text(encoding="utf-8"))
    tests = json.loads((ROOT / "tests" / "data" / "spec_example.json").read_text("utf-8"))
    assert docs == tests


def test_changelog_is_rendered(html_dir: Path) -> None:
    """The changelog page renders ``CHANGELOG.md``."""
    first = next(
        line for line in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8").splitlines()
        if line.startswith("## ")
    )
    title = re.sub(r"[\[\]]", "", first[3:]).strip()
    assert title in _text(_page(html_dir, "changelog"))


def test_tutorials_and_all_doctests_run(doctest_output: str) -> None:
    """The doctest build passes, and each tutorial actually ran examples."""
    for doc in (*TUTORIALS, "quickstart", "safety", "record-format"):
        block = re.search(rf"^Document: {re.escape(doc)}\n-+\n(.*?)(?=^Document: |\Z)",
                          doctest_output, re.S | re.M)
        assert block is not None, f"{doc}: no doctest ran"
        counts = re.search(r"(\d+) passed and (\d+) failed", block.group(1))
        assert counts is not None
        assert int(counts.group(1)) > 0, doc
        assert counts.group(2) == "0", doc
