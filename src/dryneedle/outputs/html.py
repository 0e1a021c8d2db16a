"""The static HTML page of ``dryneedle report``: inline CSS, inline SVG plots, no network.

:func:`render_html` turns the summary of :class:`~dryneedle.outputs.RunStats` into one
self-contained page: the plots are drawn by matplotlib (extra ``report``) as SVG and inlined,
the numbers are tables beside them, and the summary itself is embedded as JSON
(``<script type="application/json" id="summary">``) for machines. A Content-Security-Policy
forbids every fetch, so the page cannot reach the network even by mistake.

The output is reproducible: matplotlib draws on its own :class:`~matplotlib.figure.Figure`
(no pyplot, no GUI backend), text stays text (``svg.fonttype: none``), the SVG ids come from a
fixed ``svg.hashsalt`` and no date is written.

May import: the standard library, matplotlib (optional, extra ``report``),
:mod:`dryneedle.outputs.stats`.
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Callable, Sequence
from typing import Any, Final

__all__ = ["ReportUnavailableError", "render_html", "require_report_extra"]

_COLORS: Final = {"error": "#b42318", "warning": "#b54708", "info": "#175cd3",
                  "observed": "#344054", "brady-2014": "#7a5af8", "boyce-2020": "#12b76a",
                  "bar": "#2e90fa", "deep": "#c11574", "superficial": "#0e9384"}
_TOP: Final = 15
_MARKERS: Final = ("s", "^", "D", "v")
_CSS: Final = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#101828;
margin:0;background:#f9fafb}
header{background:#101828;color:#fff;padding:18px 32px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#d0d5dd}main{max-width:1120px;margin:0 auto;padding:16px 32px}
section{background:#fff;border:1px solid #eaecf0;border-radius:10px;margin:16px 0;
padding:16px 20px}h2{font-size:18px;margin:0 0 8px}.grid{display:grid;
grid-template-columns:minmax(0,3fr) minmax(0,2fr);gap:20px;align-items:start}
svg{max-width:100%;height:auto}table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #eaecf0}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.wide .grid{grid-template-columns:minmax(0,1fr)}code{font-size:12px}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{flex:1;min-width:120px;border:1px solid
#eaecf0;border-radius:8px;padding:10px 14px}.card b{display:block;font-size:24px}
.note{color:#475467;font-size:13px}
"""


class ReportUnavailableError(RuntimeError):
    """The HTML report needs matplotlib (the ``report`` extra), which is not installed."""


def _matplotlib() -> Any:
    try:
        import matplotlib as mpl  # noqa: PLC0415
        from matplotlib.figure import Figure  # noqa: PLC0415
    except ImportError as exc:
        msg = "the HTML report needs matplotlib: pip install 'dryneedle[report]'"
        raise ReportUnavailableError(msg) from exc
    return mpl, Figure


def require_report_extra() -> None:
    """Check that the ``report`` extra (matplotlib) is installed.

    Raises:
        ReportUnavailableError: When it is not.
    """
    _matplotlib()


def _svg(draw: Callable[[Any], None], height: float, width: float = 6.4) -> str:
    """Draw on a new figure and return its inline ``<svg>`` element (deterministic)."""
    mpl, figure_class = _matplotlib()
    rc = {"svg.fonttype": "none", "svg.hashsalt": "dryneedle-report", "font.size": 9,
          "font.family": "DejaVu Sans", "axes.spines.top": False, "axes.spines.right": False}
    with mpl.rc_context(rc):
        fig = figure_class(figsize=(width, height), layout="constrained")
        draw(fig)
        out = io.StringIO()
        fig.savefig(out, format="svg", metadata={"Date": None})
    text = out.getvalue()
    return text[text.index("<svg"):]


def _barh(labels: Sequence[str], values: Sequence[float], colors: Sequence[str],
          xlabel: str) -> Callable[[Any], None]:
    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        ys = list(range(len(labels)))
        ax.barh(ys, values, color=list(colors))
        ax.set_yticks(ys, labels=list(labels))
        ax.invert_yaxis()
        ax.set_xlabel(xlabel)
        for y, v in zip(ys, values, strict=True):
            ax.annotate(f"{v:g}", (v, y), xytext=(3, 0), textcoords="offset points",
                        va="center", fontsize=8)
        if not labels:
            ax.text(0.5, 0.5, "nothing to show", ha="center", transform=ax.transAxes)
    return draw


def _num(key: str, value: Any, fmt: str = "int") -> str:
    """A table cell whose text the browser test checks against the summary JSON."""
    if value is None:
        text = "-"
    elif fmt == "pct":
        text = f"{value * 100:.2f} %"
    else:
        text = str(value)
    return (f'<td class="n" data-key="{html.escape(key)}" data-format="{fmt}">'
            f"{html.escape(text)}</td>")


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    ths = "".join(f"<th{' class=n' if i else ''}>{html.escape(h)}</th>"
                  for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{ths}</tr></thead><tbody>{body}</tbody></table>"


def _td(text: str) -> str:
    return f"<td>{html.escape(text)}</td>"


def _section(title: str, plot: str, table: str, note: str = "", *, wide: bool = False) -> str:
    extra = f'<p class="note">{note}</p>' if note else ""
    attrs = " class=wide" if wide else ""
    return (f"<section{attrs}><h2>{html.escape(title)}</h2>{extra}<div class=grid>"
            f'<div class="plot">{plot}</div><div>{table}</div></div></section>')


def _decisions(s: dict[str, Any]) -> str:
    decisions = s["validation"]["decisions"]
    labels = list(decisions)
    plot = _svg(_barh(labels, [decisions[k] for k in labels], [_COLORS["bar"]] * len(labels),
                      "records"), 0.45 * len(labels) + 0.9)
    rows = [[_td(k), _num(f"validation.decisions.{k}", v)] for k, v in decisions.items()]
    return _section("Screening decisions", plot, _table(["decision", "records"], rows),
                    "none: the patient part was not readable.")


def _codes(s: dict[str, Any]) -> str:
    top = list(s["findings_by_code"].items())[:_TOP]
    plot = _svg(_barh([c for c, _ in top], [e["count"] for _, e in top],
                      [_COLORS.get(e["severity"], "#667085") for _, e in top], "findings"),
                0.3 * len(top) + 0.9)
    rows = [[f"<td><code>{html.escape(c)}</code></td>", _td(e["severity"]),
             _num(f"findings_by_code.{c}.count", e["count"])] for c, e in top]
    return _section(f"Top {min(_TOP, len(s['findings_by_code']))} finding codes", plot,
                    _table(["code", "severity", "findings"], rows),
                    "Bars coloured by severity: red error, amber warning, blue info.")


def _paths(s: dict[str, Any]) -> str:
    top = list(s["findings_by_path"].items())[:_TOP]
    plot = _svg(_barh([p for p, _ in top], [n for _, n in top], [_COLORS["bar"]] * len(top),
                      "findings"), 0.3 * len(top) + 0.9)
    rows = [[f"<td><code>{html.escape(p)}</code></td>", _num(f"findings_by_path.{p}", n)]
            for p, n in top]
    return _section("Findings by path", plot, _table(["path", "findings"], rows),
                    "List indices dropped: <code>session.insertions[]</code> counts every "
                    "insertion.")


def _techniques(s: dict[str, Any]) -> str:
    techniques = s["techniques"]

    def draw(fig: Any) -> None:
        left, right = fig.subplots(1, 2)
        names = list(techniques)
        counts = sorted({int(k) for t in techniques.values() for k in t["needles_per_session"]})
        width = 0.8 / max(1, len(names))
        for i, name in enumerate(names):
            per = techniques[name]["needles_per_session"]
            left.bar([c + (i - (len(names) - 1) / 2) * width for c in counts],
                     [per.get(str(c), 0) for c in counts], width=width, label=name,
                     color=_COLORS.get(name, "#667085"))
            bins = techniques[name]["depth_mm"].get("histogram_1mm", {})
            if bins:
                xs = sorted(int(k) for k in bins)
                right.step(xs, [bins[str(x)] for x in xs], where="post", label=name,
                           color=_COLORS.get(name, "#667085"))
        left.set_xlabel("needles in the session")
        left.set_ylabel("sessions")
        left.set_xticks(counts)
        right.set_xlabel("depth (mm, 1 mm bins)")
        right.set_ylabel("insertions")
        for ax in (left, right):
            if ax.get_legend_handles_labels()[0]:
                ax.legend(frameon=False)

    plot = _svg(draw, 2.6, 7.2)
    rows = []
    for name, t in techniques.items():
        d = t["depth_mm"]
        rows.append([_td(name), _num(f"techniques.{name}.insertions", t["insertions"]),
                     _num(f"techniques.{name}.sessions", t["sessions"]),
                     _num(f"techniques.{name}.depth_mm.recorded", d["recorded"]),
                     _num(f"techniques.{name}.depth_mm.mean", d.get("mean"), "text")])
    return _section("Needles and depths by technique", plot,
                    _table(["technique", "insertions", "sessions", "depths", "mean mm"], rows),
                    "Structurally valid records only.")


def _adverse(s: dict[str, Any]) -> str:
    ae = s["adverse_events"]
    items = list(ae["kinds"].items()) + [(f"all {g}", e) for g, e in ae["grades"].items()]
    papers = list(dict.fromkeys(src for _, e in items for src in e["published"]))

    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        for y, (_name, e) in enumerate(items):
            if e["rate"] is not None:
                low = e["ci95_low"] if e["ci95_low"] is not None else e["rate"]
                high = e["ci95_high"] if e["ci95_high"] is not None else e["rate"]
                ax.errorbar([e["rate"] * 100], [y],
                            xerr=[[(e["rate"] - low) * 100], [(high - e["rate"]) * 100]],
                            fmt="o", color=_COLORS["observed"], capsize=3, markersize=4,
                            label="observed, 95 % CI (Wilson)" if y == 0 else None)
            for n, source in enumerate(papers):
                marker = _MARKERS[n % len(_MARKERS)]
                p = e["published"].get(source)
                if p is not None:
                    ax.plot([p["percent"]], [y], marker, color=_COLORS.get(source, "#667085"),
                            markersize=5, label=source if source not in seen else None)
                    seen.add(source)
        ax.set_yticks(range(len(items)), labels=[n for n, _ in items])
        ax.invert_yaxis()
        ax.set_xlabel("events per 100 sessions (published: per 100 treatments/sessions)")
        ax.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncols=3)

    seen: set[str] = set()
    plot = _svg(draw, 0.28 * len(items) + 1.5, 8.0)
    rows = []
    for name, e in items:
        key = (f"adverse_events.kinds.{name}" if name in ae["kinds"]
               else f"adverse_events.grades.{name[4:]}")
        published = e["published"]
        rows.append([_td(name), _num(f"{key}.events", e["events"]),
                     _num(f"{key}.rate", e["rate"], "pct"),
                     _num(f"{key}.ci95_low", e["ci95_low"], "pct"),
                     _num(f"{key}.ci95_high", e["ci95_high"], "pct"),
                     *(_num(f"{key}.published.{src}.display", published[src]["display"], "text")
                       if src in published else _td("") for src in papers)])
    note = (f"Over {ae['sessions']} sessions of structurally valid records "
            f"({ae['records_left_out']} left out). Intervals: Wilson score, 95 %.")
    return _section("Adverse events beside brady-2014 and boyce-2020", plot,
                    _table(["kind", "events", "rate", "95 % CI low", "95 % CI high", *papers],
                           rows),
                    html.escape(note), wide=True)


def _metadata(s: dict[str, Any]) -> str:
    v = s["validation"]
    cards = "".join(
        f'<div class="card">{html.escape(label)}<b data-key="validation.{key}" '
        f'data-format="int">{v[key]}</b></div>'
        for label, key in (("records", "records"), ("valid", "valid"), ("invalid", "invalid"),
                           ("findings", "findings")))
    inputs = [[f"<td><code>{html.escape(i['name'])}</code></td>",
               f'<td class="n">{i["records"]}</td>'] for i in s["inputs"]]
    meta = _table(["", ""], [
        [_td("library version"),
         f'<td data-key="tool.version" data-format="text">{html.escape(s["tool"]["version"])}'
         "</td>"],
        [_td("policy"),
         f'<td data-key="policy.name" data-format="text">{html.escape(s["policy"]["name"])}'
         "</td>"],
        [_td("policy fingerprint"),
         f'<td><code data-key="policy.fingerprint" data-format="text">'
         f'{html.escape(s["policy"]["fingerprint"])}</code></td>'],
    ])
    return (f'<section><h2>Run</h2><div class="cards">{cards}</div>'
            f'<div class=grid><div>{meta}</div><div>{_table(["input", "records"], inputs)}'
            "</div></div></section>")


def _json_script(data: dict[str, Any]) -> str:
    text = json.dumps(data, indent=1, ensure_ascii=False, sort_keys=False)
    text = text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    return f'<script type="application/json" id="summary">{text}</script>'


def render_html(summary: dict[str, Any], *, title: str = "dryneedle validation report") -> str:
    """Return the page for a run summary (:meth:`~dryneedle.outputs.RunStats.summary`).

    Args:
        summary: The JSON summary of the run.
        title: The page title.

    Raises:
        ReportUnavailableError: Without matplotlib (extra ``report``).
    """
    _matplotlib()
    head = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>dryneedle "
        f"{html.escape(summary['tool']['version'])} · policy "
        f"{html.escape(summary['policy']['name'])} "
        f"({html.escape(summary['policy']['fingerprint'])})</p></header><main>"
    )
    parts = [head, _metadata(summary), _decisions(summary), _codes(summary), _paths(summary),
             _techniques(summary), _adverse(summary), "</main>", _json_script(summary),
             "</body></html>\n"]
    return "".join(parts)
