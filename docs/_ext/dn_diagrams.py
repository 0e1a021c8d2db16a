"""Sphinx extension: diagrams drawn at build time from dryneedle's data (plain SVG, no tools).

On ``builder-inited`` this writes, into ``docs/_generated/`` (not committed):

``screening-flow-<policy>.svg``
    How a screening decision is reached under each built-in policy: the questions asked in
    order of :data:`~dryneedle.findings.DECISION_ORDER` (most restrictive first), and under each
    outcome the registered rules whose effect, under that policy, leads to it.
``layers.svg``
    The package's import layers, read from the ``layers`` contract of ``[tool.importlinter]``
    in ``pyproject.toml`` (the contract ``lint-imports`` enforces in CI): top layer first, each
    module of a layer in its own box; a module may import only from its own box or below.
``region-map.svg``
    The body regions of :class:`~dryneedle.model.Region`, laid out roughly head to toe, each
    listing its muscles from :data:`~dryneedle.catalog.MUSCLES`: muscles over the lung are
    highlighted, with depth limits and muscles without palpable haemostasis marked.

Nothing is hand-drawn: change the registry or the catalog and the pictures change with it.
No graphviz or matplotlib is needed; text widths are estimated, so labels are kept short.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from dn_catalog import EFFECT_DECISION
from sphinx.application import Sphinx

import dryneedle
from dryneedle.catalog import MUSCLES, Muscle
from dryneedle.findings import DECISION_ORDER, Decision, Effect, Rule, Severity, all_rules
from dryneedle.model import Region
from dryneedle.policy import DEFAULT_POLICY, POLICIES, Policy

OUT_DIR = "_generated"

SANS = "system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', Arial, sans-serif"
MONO = "ui-monospace, 'SFMono-Regular', Menlo, Consolas, 'DejaVu Sans Mono', monospace"

INK = "#1f2328"
MUTED = "#57606a"
LUNG = "#b42318"
LUNG_FILL = "#fef3f2"
NOPALP = "#6e40c9"
LINE = "#8c959f"

DECISION_COLOURS: dict[Decision, tuple[str, str]] = {  # (stroke, fill)
    Decision.NOT_ELIGIBLE: ("#b42318", "#fef3f2"),
    Decision.NEEDS_REVIEW: ("#b54708", "#fffaeb"),
    Decision.ELIGIBLE_WITH_PRECAUTIONS: ("#175cd3", "#eff8ff"),
    Decision.ELIGIBLE: ("#067647", "#ecfdf3"),
}


def _w(text: str, size: float, *, mono: bool = False, bold: bool = False) -> float:
    """Estimated width of a text run in px (generous, so boxes do not clip)."""
    per = 0.61 if mono else (0.58 if bold else 0.54)
    return len(text) * size * per


class Svg:
    """A tiny SVG writer: shapes and text, escaped, in drawing order."""

    def __init__(self, title: str, desc: str) -> None:
        self.title = title
        self.desc = desc
        self.parts: list[str] = []

    def add(self, raw: str) -> None:
        self.parts.append(raw)

    def rect(self, x: float, y: float, w: float, h: float, *, stroke: str, fill: str,
             rx: float = 8, width: float = 1.5, dash: str | None = None) -> None:
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{rx}" '
                 f'fill="{fill}" stroke="{stroke}" stroke-width="{width}"{d}/>')

    def text(self, x: float, y: float, text: str, *, size: float = 13, fill: str = INK,
             mono: bool = False, bold: bool = False, italic: bool = False,
             anchor: str = "start", attrs: str = "") -> None:
        style = [f'font-family="{MONO if mono else SANS}"', f'font-size="{size}"',
                 f'fill="{fill}"', f'text-anchor="{anchor}"']
        if bold:
            style.append('font-weight="600"')
        if italic:
            style.append('font-style="italic"')
        extra = f" {attrs}" if attrs else ""
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" {" ".join(style)}{extra}>{escape(text)}</text>')

    def spans(self, x: float, y: float, runs: Sequence[tuple[str, dict[str, Any]]], *,
              size: float = 13, attrs: str = "") -> None:
        """One line of text made of differently styled runs."""
        out = []
        for text, style in runs:
            a = [f'font-family="{MONO if style.get("mono") else SANS}"',
                 f'fill="{style.get("fill", INK)}"']
            if style.get("bold"):
                a.append('font-weight="600"')
            if style.get("italic"):
                a.append('font-style="italic"')
            if style.get("size"):
                a.append(f'font-size="{style["size"]}"')
            out.append(f'<tspan {" ".join(a)}>{escape(text)}</tspan>')
        extra = f" {attrs}" if attrs else ""
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" xml:space="preserve"{extra}>'
                 f'{"".join(out)}</text>')

    def line(self, x1: float, y1: float, x2: float, y2: float, *, arrow: bool = True) -> None:
        head = ' marker-end="url(#arrow)"' if arrow else ""
        self.add(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                 f'stroke="{LINE}" stroke-width="1.6"{head}/>')

    def render(self, width: float, height: float) -> str:
        head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
            f'aria-labelledby="dn-title dn-desc">\n'
            f'<title id="dn-title">{escape(self.title)}</title>\n'
            f'<desc id="dn-desc">{escape(self.desc)}</desc>\n'
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
            f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
            f'fill="{LINE}"/></marker></defs>\n'
            f'<rect x="0" y="0" width="{width:.0f}" height="{height:.0f}" fill="#ffffff"/>\n'
        )
        return head + "\n".join(self.parts) + "\n</svg>\n"


# --- the screening decision flow ---------------------------------------------------------------


def decision_rules(policy: Policy) -> dict[Decision, list[Rule]]:
    """The rules whose effect under ``policy`` leads to each decision (rules with effects)."""
    out: dict[Decision, list[Rule]] = {d: [] for d in Decision}
    for r in all_rules():
        if r.effect is None:
            continue
        decision = EFFECT_DECISION[policy.effect_of(r.id, r.effect)]
        if decision is not None:
            out[decision].append(r)
    return out


def screening_flow_svg(policy: Policy) -> str:
    """Draw how a decision is reached under ``policy``."""
    by_decision = decision_rules(policy)
    effect_of = {d: e for e, d in EFFECT_DECISION.items() if d is not None}
    # Questions in order, most restrictive outcome first; the most permissive is the fall-through.
    ordered = sorted(Decision, key=lambda d: -DECISION_ORDER[d])
    asked, fallthrough = ordered[:-1], ordered[-1]
    n_rules = sum(len(v) for v in by_decision.values())

    svg = Svg(
        f"How screening decides ({policy.name} policy)",
        f"Flow chart of dryneedle screening under the {policy.name} policy: every screening rule "
        "yields findings with an effect; the most restrictive effect decides. "
        + " ".join(
            f"{d.value}: {', '.join(r.id for r in by_decision[d])}." for d in asked
        ),
    )
    width = 790.0
    left_x, left_w = 20.0, 300.0
    right_x, right_w = 390.0, 380.0
    cx = left_x + left_w / 2
    line_h = 19.0

    y = 24.0
    svg.text(left_x, y, f"How screening decides \u2014 {policy.name} policy", size=18, bold=True)
    y += 20
    svg.text(left_x, y, f"policy fingerprint {policy.fingerprint} \u00b7 dryneedle "
             f"{dryneedle.__version__}", size=11.5, fill=MUTED, mono=True)
    y += 22

    def box(lines: Sequence[str], top: float, *, mono_first: bool = False) -> float:
        h = 18 + line_h * len(lines)
        svg.rect(left_x, top, left_w, h, stroke=INK, fill="#f6f8fa")
        for i, text in enumerate(lines):
            svg.text(cx, top + 24 + i * line_h, text, anchor="middle",
                     bold=(i == 0), mono=(mono_first and i == 0))
        return top + h

    bottom = box(["Inputs", "patient answers, planned sites,", "evaluation date, policy"], y)
    svg.line(cx, bottom, cx, bottom + 26)
    y = bottom + 26
    bottom = box([f"Apply all {n_rules} screening rules",
                  "each finding has an effect under the policy"], y)
    svg.line(cx, bottom, cx, bottom + 26)
    y = bottom + 26

    # Outcome boxes in the right column, each beside its question.
    dh = 96.0  # diamond height
    for decision in asked:
        effect = effect_of[decision]
        rules = by_decision[decision]
        stroke, fill = DECISION_COLOURS[decision]
        out_h = 46 + line_h * max(len(rules), 1)
        # Question (diamond) on the left.
        top = y
        mid = top + dh / 2
        pts = [(cx, top), (left_x + left_w - 20, mid), (cx, top + dh), (left_x + 20, mid)]
        svg.add('<polygon points="' + " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
                + f'" fill="#ffffff" stroke="{INK}" stroke-width="1.5"/>')
        svg.text(cx, mid - 4, "Any finding with effect", anchor="middle")
        svg.spans(cx - _w(f"{effect.value}?", 13, mono=True) / 2, mid + 16,
                  [(effect.value, {"mono": True, "bold": True, "fill": stroke}), ("?", {})])
        # "yes" arrow to the outcome.
        svg.line(left_x + left_w - 20, mid, right_x, mid)
        svg.text((left_x + left_w + right_x) / 2 - 10, mid - 6, "yes", fill=MUTED, size=12,
                 anchor="middle")
        # Outcome box.
        otop = mid - 24
        svg.rect(right_x, otop, right_w, out_h, stroke=stroke, fill=fill, width=2)
        svg.text(right_x + 14, otop + 25, decision.value, mono=True, bold=True, size=15,
                 fill=stroke)
        svg.text(right_x + right_w - 14, otop + 25, f"{len(rules)} rule(s)", fill=MUTED,
                 size=12, anchor="end")
        for i, r in enumerate(rules):
            sev = policy.severity_of(r.id, r.severity)
            runs: list[tuple[str, dict[str, Any]]] = [(r.id, {"mono": True, "size": 12.5})]
            if sev is not _EFFECT_DEFAULT_SEVERITY[policy.effect_of(r.id, r.effect or effect)]:
                runs.append((f"  ({sev.value})", {"fill": MUTED, "size": 12}))
            if policy.rule_override(r.id) is not None:
                runs.append(("  \u2605 overridden", {"fill": stroke, "size": 12, "bold": True}))
            svg.spans(right_x + 16, otop + 48 + i * line_h, runs,
                      attrs=f'data-rule={quoteattr(r.id)}')
        if not rules:
            svg.text(right_x + 16, otop + 48, "no rule has this effect under this policy",
                     italic=True, fill=MUTED, size=12)
        # "no" arrow down to the next question.
        next_y = max(top + dh + 34, otop + out_h + 24)
        svg.line(cx, top + dh, cx, next_y)
        svg.text(cx + 8, top + dh + 18, "no", fill=MUTED, size=12)
        y = next_y

    stroke, fill = DECISION_COLOURS[fallthrough]
    svg.rect(left_x, y, left_w, 62, stroke=stroke, fill=fill, width=2)
    svg.text(cx, y + 26, fallthrough.value, anchor="middle", mono=True, bold=True, size=15,
             fill=stroke)
    svg.text(cx, y + 46, "nothing excluded, unknown or to take care of", anchor="middle",
             size=12, fill=MUTED)
    y += 62 + 28
    notes = [
        "Unknown is never safe: an unanswered question gives a review finding "
        "(screening.unknown_answer), never eligible.",
        "(error): the finding is an error although its effect is a precaution: site rules "
        "exclude their site only;",
        "when every planned site is excluded, screening.all_sites_excluded decides.   "
        "\u2605 changed by this policy.",
    ]
    for i, n in enumerate(notes):
        svg.text(left_x, y + i * 17, n, size=12, fill=MUTED)
    y += 17 * len(notes) + 10
    return svg.render(width, y)


_EFFECT_DEFAULT_SEVERITY = {
    Effect.EXCLUDE: Severity.ERROR,
    Effect.REVIEW: Severity.WARNING,
    Effect.PRECAUTION: Severity.WARNING,
    Effect.NOTE: Severity.INFO,
}


# --- the body-region map ---------------------------------------------------------------------

# Layout only (where each region is drawn): columns A upper limb, B front and side, C back;
# "BC" spans B and C. Regions missing here are drawn in a last row, so none is ever dropped.
LAYOUT: tuple[tuple[tuple[str, Region | None], ...], ...] = (
    (("B", Region.HEAD_FACE), ("C", Region.JAW)),
    (("BC", Region.NECK),),
    (("A", Region.SHOULDER), ("B", Region.CHEST), ("C", Region.UPPER_BACK)),
    (("A", Region.ARM), ("B", Region.ABDOMEN), ("C", Region.LOWER_BACK)),
    (("A", Region.FOREARM), ("B", Region.HIP), ("C", Region.PELVIS)),
    (("A", Region.HAND), ("BC", Region.THIGH)),
    (("BC", Region.KNEE),),
    (("BC", Region.LEG),),
    (("BC", Region.ANKLE_FOOT),),
)
COLUMNS = {"A": (20.0, 200.0), "B": (236.0, 264.0), "C": (516.0, 264.0)}
REGION_LABELS = {Region.HEAD_FACE: "head and face", Region.ANKLE_FOOT: "ankle and foot"}
COLUMN_TITLES = {"A": "Upper limb", "B": "Head, front and side", "C": "Jaw, back and pelvis"}


def _span(col: str) -> tuple[float, float]:
    if col == "BC":
        x0, _ = COLUMNS["B"]
        x1, w1 = COLUMNS["C"]
        return x0, x1 + w1 - x0
    return COLUMNS[col]


def _common_sources(muscles: Iterable[Muscle]) -> tuple[str, ...]:
    sets = [tuple(m.sources) for m in muscles]
    if not sets:
        return ()
    first = sets[0]
    return tuple(s for s in first if all(s in other for other in sets[1:]))


def _muscles_by_region() -> dict[Region, list[Muscle]]:
    out: dict[Region, list[Muscle]] = {r: [] for r in Region}
    for m in MUSCLES.values():
        out[m.region].append(m)
    return out


def region_map_svg(policy: Policy = DEFAULT_POLICY) -> str:
    """Draw the body regions head to toe with their muscles and the over-lung ones marked."""
    by_region = _muscles_by_region()
    placed = {r for row in LAYOUT for _, r in row if r is not None}
    rows = list(LAYOUT)
    extra = [r for r in Region if r not in placed]
    if extra:  # a region added to the model but not to the layout: still drawn
        rows.extend((("BC", r),) for r in extra)
    lung = [m for m in MUSCLES.values() if m.over_lung]
    limited = [m for m in MUSCLES.values() if m.depth_limit_mm is not None]
    nopalp = [m for m in MUSCLES.values() if not m.palpable_haemostasis]
    lung_src = _common_sources(lung)
    depth_src = tuple(s for s in _common_sources(limited) if s not in lung_src)
    nopalp_src = _common_sources(nopalp)

    svg = Svg(
        "Body regions and catalog muscles",
        "Body regions of the dryneedle anatomy catalog, head to toe, with their muscles. "
        f"Over the lung: {', '.join(m.id for m in lung)}. "
        f"Depth limits: {', '.join(f'{m.id} {m.depth_limit_mm:g} mm' for m in limited)}. "
        f"No palpable haemostasis: {', '.join(m.id for m in nopalp)}.",
    )
    width = 800.0
    line_h = 19.0
    y = 26.0
    svg.text(20, y, "Body regions and the muscles of the anatomy catalog", size=18, bold=True)
    y += 20
    svg.text(20, y, f"{len(MUSCLES)} muscles in {len(Region)} regions \u00b7 dryneedle "
             f"{dryneedle.__version__}", size=11.5, fill=MUTED, mono=True)
    y += 20

    # Legend.
    legend: list[tuple[tuple[str, dict[str, Any]], str]] = [
        (("\u25b2 Name", {"fill": LUNG, "bold": True}),
         f"overlies the lung ({', '.join(lung_src)}): superficial technique preferred;"),
        (("", {}),
         f"without a limit of its own, \u2265 {policy.over_lung_max_depth_mm:g} mm with no "
         "ultrasound guidance is an error"),
        (("\u2264 N mm", {"fill": LUNG, "bold": True}),
         f"depth limit of the muscle ({', '.join(depth_src)})"),
        (("\u2716", {"fill": NOPALP, "bold": True}),
         "no haemostasis by palpation: deep needling excluded under bleeding risk "
         f"({', '.join(nopalp_src)})"),
    ]
    svg.rect(20, y, width - 40, 14 + 19 * len(legend), stroke=LINE, fill="#ffffff", rx=6,
             width=1)
    for i, (symbol, description) in enumerate(legend):
        svg.spans(32, y + 22 + i * 19, [symbol], size=12.5)
        svg.text(112, y + 22 + i * 19, description, size=12.5, fill=MUTED)
    y += 14 + 19 * len(legend) + 30
    for col, (x, w) in COLUMNS.items():
        svg.text(x + w / 2, y, COLUMN_TITLES[col].upper(), size=11, fill=MUTED, bold=True,
                 anchor="middle")
    y += 10

    def per_column(col: str, n: int) -> int:
        return -(-n // 2) if col == "BC" and n > 3 else n

    for row in rows:
        row_h = max(
            38 + line_h * max(per_column(col, len(by_region[r])) if r else 0, 1) + 6
            for col, r in row
        )
        for col, region in row:
            if region is None:
                continue
            x, w = _span(col)
            muscles = by_region[region]
            has_lung = any(m.over_lung for m in muscles)
            svg.add(f'<g data-region={quoteattr(region.value)}>')
            svg.rect(x, y, w, row_h, stroke=LUNG if has_lung else LINE,
                     fill=LUNG_FILL if has_lung else "#f6f8fa", width=2 if has_lung else 1.2)
            svg.text(x + 12, y + 22, REGION_LABELS.get(region, region.value.replace("_", " "))
                     .capitalize(), bold=True, size=14)
            svg.text(x + w - 12, y + 22, region.value, mono=True, size=11.5, fill=MUTED,
                     anchor="end")
            if not muscles:
                svg.text(x + 12, y + 44, "no muscle in the catalog yet", italic=True,
                         fill=MUTED, size=12)
            rows_here = per_column(col, len(muscles))
            for i, m in enumerate(muscles):
                mx = x + 14 + (i // rows_here) * (w / 2)
                my = y + 44 + (i % rows_here) * line_h
                runs: list[tuple[str, dict[str, Any]]] = []
                if m.over_lung:
                    runs.append(("\u25b2 ", {"fill": LUNG}))
                    runs.append((m.name, {"fill": LUNG, "bold": True}))
                else:
                    runs.append(("\u2022 ", {"fill": MUTED}))
                    runs.append((m.name, {}))
                if m.depth_limit_mm is not None:
                    runs.append((f"  \u2264 {m.depth_limit_mm:g} mm",
                                 {"fill": LUNG, "bold": True, "size": 12}))
                if not m.palpable_haemostasis:
                    runs.append(("  \u2716", {"fill": NOPALP, "bold": True}))
                svg.spans(mx, my, runs, size=13, attrs=f"data-muscle={quoteattr(m.id)}")
            svg.add("</g>")
        y += row_h + 10
    return svg.render(width, y + 10)


# --- the import layers (from pyproject's import-linter contract) ----------------------------


def import_layers(pyproject: Path | None = None) -> list[list[str]]:
    """The ``layers`` contract of ``[tool.importlinter]``: top layer first, modules per layer."""
    import tomllib  # noqa: PLC0415 - only the docs build needs it

    path = pyproject or Path(__file__).resolve().parents[2] / "pyproject.toml"
    config = tomllib.loads(path.read_text(encoding="utf-8"))["tool"]["importlinter"]
    contract = next(c for c in config["contracts"] if c["type"] == "layers")
    return [[m.strip() for m in layer.replace(":", "|").split("|")] for layer in contract["layers"]]


def layers_svg() -> str:
    """The import layers as stacked rows of module boxes, top layer first."""
    layers = import_layers()
    svg = Svg("dryneedle import layers",
              "Each row is a layer of the import-linter contract; a module imports only from "
              "its own row or the rows below it.")
    width, row_h, gap, x0 = 760.0, 46.0, 14.0, 24.0
    y = 20.0
    svg.text(x0, y + 4, "imports point down \u2193 (checked by lint-imports in CI)", size=12,
             fill=MUTED, italic=True)
    y += 16
    for i, layer in enumerate(layers):
        n = len(layer)
        box_w = (width - 2 * x0 - (n - 1) * 10) / n
        for j, module in enumerate(layer):
            x = x0 + j * (box_w + 10)
            shade = ("#eff8ff", "#175cd3") if i % 2 == 0 else ("#f6f8fa", "#57606a")
            svg.rect(x, y, box_w, row_h, stroke=shade[1], fill=shade[0])
            svg.text(x + box_w / 2, y + row_h / 2 + 5, module.removeprefix("dryneedle."),
                     mono=True, size=13, anchor="middle", attrs=f"data-module={quoteattr(module)}")
        if i < len(layers) - 1:
            svg.line(width / 2, y + row_h + 1, width / 2, y + row_h + gap - 1)
        y += row_h + gap
    return svg.render(width, y + 6)


# --- Sphinx hook ------------------------------------------------------------------------------


def diagrams() -> dict[str, str]:
    """Every diagram, by file name."""
    out = {f"screening-flow-{name}.svg": screening_flow_svg(p) for name, p in POLICIES.items()}
    out["region-map.svg"] = region_map_svg()
    out["layers.svg"] = layers_svg()
    return out


def _write_if_changed(path: Path, text: str) -> None:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".svg")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def write_diagrams(app: Sphinx) -> None:
    """Write every diagram into ``<srcdir>/_generated`` (before any document is read)."""
    out = Path(app.srcdir) / OUT_DIR
    for name, text in diagrams().items():
        _write_if_changed(out / name, text)


def setup(app: Sphinx) -> dict[str, Any]:
    """Generate the diagrams when the builder starts."""
    app.connect("builder-inited", write_diagrams)
    return {"version": dryneedle.__version__, "parallel_read_safe": True,
            "parallel_write_safe": True}
