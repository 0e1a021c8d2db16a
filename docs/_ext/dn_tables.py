"""Sphinx extension: the protocol guide's tables, generated from the policy and the registry.

Nothing here is hand-written content: each table is rendered at build time from the data the
library uses at run time (:class:`dryneedle.policy.Policy` limits of the built-in policies,
the rule registry and the anatomy catalog), so the protocol guide cannot drift from the code.

Directives:

``dryneedle-protocol-limits``
    The policy limits read by the protocol and series rules: value under each built-in policy,
    unit, meaning (with inclusive/exclusive boundaries), the rules that read it, and sources.
    Option ``:categories:`` (comma-separated rule categories, default ``protocol,series``).
``dryneedle-muscle-depth-limits``
    The muscles of the anatomy catalog that overlie the lung, with their own depth limit where
    a source gives one (otherwise the policy's ``over_lung_max_depth_mm`` applies).
``dryneedle-protocol-rules``
    A summary of the rules of some categories (default ``protocol,series``): id, title,
    severity under each built-in policy, limits read and sources.

These tables only *link* to the rule, limit and source targets that ``dn_catalog`` defines on
the rule catalog and bibliography pages (so no target is defined twice); ``dn_catalog`` is
loaded by this extension's ``setup``.
"""

from __future__ import annotations

from typing import Any

from dn_nodes import (
    Content,
    GeneratedDirective,
    builtin_policies,
    code,
    fmt_number,
    joined,
    table,
    xref,
)
from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx

import dryneedle
from dryneedle.catalog import MUSCLES
from dryneedle.findings import Rule, all_rules
from dryneedle.policy import DEFAULT_POLICY

DEFAULT_CATEGORIES = "protocol,series"


# --- directives ----------------------------------------------------------------------------------


class _Generated(GeneratedDirective):
    """A generated directive over the rules of some categories (option ``:categories:``)."""

    option_spec = {"categories": directives.unchanged}  # noqa: RUF012 - docutils API

    def rules(self) -> list[Rule]:
        wanted = {c.strip() for c in self.options.get("categories", DEFAULT_CATEGORIES).split(",")}
        chosen = [r for r in all_rules() if r.category in wanted]
        if not chosen:
            msg = f"no registered rule has a category in {sorted(wanted)}"
            raise self.error(msg)
        return chosen


class ProtocolLimitsDirective(_Generated):
    """``dryneedle-protocol-limits``: the limits the chosen rules read, under each policy."""

    def generate(self) -> list[nodes.Node]:
        doc = self.env.docname
        readers: dict[str, list[str]] = {}
        for rule in self.rules():
            for name in rule.limits:
                readers.setdefault(name, []).append(rule.id)
        policies = builtin_policies()
        values = {p.name: {lim.name: lim.value for lim in p.limits()} for p in policies}
        rows: list[list[Content]] = []
        for lim in DEFAULT_POLICY.limits():  # policy order
            if lim.name not in readers:
                continue
            rows.append([
                [xref(doc, "limit", lim.name)],
                *(fmt_number(values[p.name][lim.name]) for p in policies),
                lim.unit,
                lim.doc,
                joined([xref(doc, "rule", r) for r in readers[lim.name]]),
                joined([xref(doc, "source", s) for s in lim.sources]),
            ])
        if not rows:
            msg = "the chosen rules read no policy limit"
            raise self.error(msg)
        return [table(
            ["Limit", *(p.name for p in policies), "Unit", "Meaning", "Read by", "Sources"],
            rows, [18, *(8 for _ in policies), 6, 34, 22, 14], classes=["dn-protocol-limits"],
        )]


class MuscleDepthLimitsDirective(_Generated):
    """``dryneedle-muscle-depth-limits``: over-lung muscles and the depth limit that applies."""

    def generate(self) -> list[nodes.Node]:
        doc = self.env.docname
        policy_limit = fmt_number(DEFAULT_POLICY.over_lung_max_depth_mm)
        rows: list[list[Content]] = []
        for m in MUSCLES.values():
            if not m.over_lung:
                continue
            if m.depth_limit_mm is not None:
                limit: Content = f"beyond {fmt_number(m.depth_limit_mm)} mm"
            else:
                limit = [nodes.Text(f"at or beyond {policy_limit} mm ("),
                         xref(doc, "limit", "over_lung_max_depth_mm"), nodes.Text(")")]
            rows.append([
                [code(m.id)], m.name, m.region.value, limit,
                joined([xref(doc, "source", s) for s in m.sources]),
            ])
        return [table(
            ["Muscle", "Name", "Region", "Error without ultrasound (default policy)", "Sources"],
            rows, [22, 22, 12, 28, 16], classes=["dn-muscle-depth-limits"],
        )]


class ProtocolRulesDirective(_Generated):
    """``dryneedle-protocol-rules``: a summary of the chosen rules under each policy."""

    def generate(self) -> list[nodes.Node]:
        doc = self.env.docname
        policies = builtin_policies()
        rows: list[list[Content]] = [
            [
                [xref(doc, "rule", r.id)],
                r.title,
                *(p.severity_of(r.id, r.severity).value for p in policies),
                joined([xref(doc, "limit", name) for name in r.limits]) or "\u2014",
                joined([xref(doc, "source", s) for s in r.sources]),
            ]
            for r in self.rules()
        ]
        return [table(
            ["Rule", "Title", *(p.name for p in policies), "Limits", "Sources"],
            rows, [30, 30, *(8 for _ in policies), 20, 16], classes=["dn-protocol-rules"],
        )]


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the protocol guide's directives (after ``dn_catalog``, whose targets they use)."""
    app.setup_extension("dn_catalog")
    app.add_directive("dryneedle-protocol-limits", ProtocolLimitsDirective)
    app.add_directive("dryneedle-muscle-depth-limits", MuscleDepthLimitsDirective)
    app.add_directive("dryneedle-protocol-rules", ProtocolRulesDirective)
    return {"version": dryneedle.__version__, "parallel_read_safe": True,
            "parallel_write_safe": True}
