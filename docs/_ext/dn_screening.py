"""Sphinx extension: the screening guide's tables, generated from the rule registry and policies.

Nothing here is hand-written clinical content: every row is rendered at build time from
:func:`dryneedle.screening.rule_ids`, the registered rules and the built-in policies, so the
screening guide cannot drift from the code.

Directives:

``dryneedle-policies``
    For each screening rule: its effect and severity under every built-in policy side by side
    (``default`` and ``guideline``), the decision that effect leads to, the override's
    justification and sources where a policy changes the rule, and the rule's own sources.
    Flag ``:changed-only:`` keeps the rules some policy overrides.
``dryneedle-decisions``
    The decision table of one policy (``:policy: default`` by default): for each decision,
    from the most to the least restrictive, the screening rules whose findings lead to it.

Rule and source names are cross-references into the rule catalog and the bibliography
(the ``rule`` and ``source`` object types of ``dn_catalog``, which this extension loads).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

import dryneedle
from dryneedle.findings import Decision, Effect, Rule, get_rule
from dryneedle.policy import POLICIES, Policy
from dryneedle.screening import rule_ids

#: What a screening effect does to the decision (see :class:`dryneedle.findings.Effect`).
EFFECT_DECISION: dict[Effect, Decision | None] = {
    Effect.EXCLUDE: Decision.NOT_ELIGIBLE,
    Effect.REVIEW: Decision.NEEDS_REVIEW,
    Effect.PRECAUTION: Decision.ELIGIBLE_WITH_PRECAUTIONS,
    Effect.NOTE: None,
}

#: Decisions from the most to the least restrictive (the SPEC §3 table order).
DECISIONS_STRICT_FIRST = (
    Decision.NOT_ELIGIBLE,
    Decision.NEEDS_REVIEW,
    Decision.ELIGIBLE_WITH_PRECAUTIONS,
    Decision.ELIGIBLE,
)


def screening_rules() -> tuple[Rule, ...]:
    """The screening rules, in the order :func:`~dryneedle.screening.rule_ids` gives."""
    return tuple(get_rule(rid) for rid in rule_ids())


def effect_under(rule: Rule, policy: Policy) -> Effect:
    """The rule's screening effect under a policy."""
    return policy.effect_of(rule.id, rule.effect or Effect.NOTE)


def outcome(rule: Rule, policy: Policy) -> str:
    """``severity; effect -> decision`` of a screening rule under a policy."""
    severity = policy.severity_of(rule.id, rule.severity).value
    effect = effect_under(rule, policy)
    decision = EFFECT_DECISION[effect]
    lead = "changes nothing" if decision is None else decision.value
    return f"{severity}; {effect.value} \u2192 {lead}"


# --- node helpers -------------------------------------------------------------------------------


def _code(text: str) -> nodes.literal:
    return nodes.literal(text, text)


def _xref(docname: str, reftype: str, target: str) -> addnodes.pending_xref:
    """A checked cross-reference (``-n``) to a ``rule`` or ``source`` of ``dn_catalog``."""
    ref: addnodes.pending_xref = addnodes.pending_xref(
        "", refdomain="std", reftype=reftype, reftarget=target, refdoc=docname,
        refexplicit=True, refwarn=True,
    )
    ref += _code(target)
    return ref


def _joined(items: Sequence[nodes.Node], sep: str = ", ") -> list[nodes.Node]:
    out: list[nodes.Node] = []
    for i, item in enumerate(items):
        if i:
            out.append(nodes.Text(sep))
        out.append(item)
    return out


def _cell(*content: nodes.Node | str) -> nodes.entry:
    para = nodes.paragraph()
    for c in content:
        para += nodes.Text(c) if isinstance(c, str) else c
    entry = nodes.entry()
    entry += para
    return entry


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[nodes.entry]], widths: Sequence[int],
    classes: Sequence[str],
) -> nodes.table:
    table = nodes.table(classes=["dn-table", *classes])
    group = nodes.tgroup(cols=len(headers))
    table += group
    for w in widths:
        group += nodes.colspec(colwidth=w)
    head = nodes.thead()
    row = nodes.row()
    for h in headers:
        row += _cell(h)
    head += row
    group += head
    body = nodes.tbody()
    for cells in rows:
        row = nodes.row()
        row.extend(cells)
        body += row
    group += body
    return table


class _Generated(SphinxDirective):
    """A directive rendered from the library (the page is rebuilt when the library changes)."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        package = Path(dryneedle.__file__).parent
        for path in sorted(package.rglob("*.py")):
            self.env.note_dependency(str(path))
        return self.generate()

    def generate(self) -> list[nodes.Node]:
        raise NotImplementedError


# --- directives ---------------------------------------------------------------------------------


class PoliciesDirective(_Generated):
    """``dryneedle-policies``: every screening rule under every built-in policy, side by side."""

    option_spec: ClassVar[dict[str, Any]] = {"changed-only": directives.flag}

    def generate(self) -> list[nodes.Node]:
        doc = self.env.docname
        policies = tuple(POLICIES.values())
        rules = screening_rules()
        if "changed-only" in self.options:
            rules = tuple(r for r in rules if any(p.rule_override(r.id) for p in policies))
        rows = []
        for rule in rules:
            cells = [_cell(_xref(doc, "rule", rule.id)), _cell(rule.title)]
            for p in policies:
                cells.append(_cell(outcome(rule, p)))
            notes: list[nodes.Node] = []
            for p in policies:
                o = p.rule_override(rule.id)
                if o is None:
                    continue
                if notes:
                    notes.append(nodes.Text(" "))
                notes.append(nodes.strong("", f"{p.name}: "))
                notes.append(nodes.Text(o.justification))
                if o.sources:
                    notes.append(nodes.Text(" ("))
                    notes.extend(_joined([_xref(doc, "source", s) for s in o.sources]))
                    notes.append(nodes.Text(")"))
            cells.append(_cell(*notes) if notes else _cell("\u2014"))
            cells.append(_cell(*_joined([_xref(doc, "source", s) for s in rule.sources])))
            rows.append(cells)
        return [_table(
            ["Rule", "Title", *(f"{p.name} policy" for p in policies),
             "Why a policy differs", "Rule sources"],
            rows,
            [18, 18, *(14 for _ in policies), 24, 12],
            classes=["dn-policies"],
        )]


def _policy_option(value: str | None) -> str:
    name = (value or "").strip()
    if name not in POLICIES:
        msg = f"unknown policy {name!r}; built-in: {', '.join(POLICIES)}"
        raise ValueError(msg)
    return str(name)


class DecisionsDirective(_Generated):
    """``dryneedle-decisions``: which screening rules lead to which decision under a policy."""

    option_spec: ClassVar[dict[str, Any]] = {"policy": _policy_option}

    def generate(self) -> list[nodes.Node]:
        doc = self.env.docname
        policy = POLICIES[self.options.get("policy", "default")]
        by_decision: dict[Decision, list[Rule]] = {d: [] for d in DECISIONS_STRICT_FIRST}
        for rule in screening_rules():
            decision = EFFECT_DECISION[effect_under(rule, policy)]
            if decision is not None:
                by_decision[decision].append(rule)
        rows = []
        for decision in DECISIONS_STRICT_FIRST:
            rules = by_decision[decision]
            if decision is Decision.ELIGIBLE:
                why: list[nodes.Node] = [nodes.Text("no finding of the rules above")]
            else:
                why = _joined([_xref(doc, "rule", r.id) for r in rules])
            rows.append([_cell(_code(decision.value)), _cell(*why)])
        return [_table(
            ["Decision", f"Findings that lead to it ({policy.name} policy)"], rows, [22, 78],
            classes=["dn-decisions"],
        )]


def setup(app: Sphinx) -> dict[str, Any]:
    """Register ``dryneedle-policies`` and ``dryneedle-decisions`` (needs ``dn_catalog``)."""
    app.setup_extension("dn_catalog")
    app.add_directive("dryneedle-policies", PoliciesDirective)
    app.add_directive("dryneedle-decisions", DecisionsDirective)
    return {"version": dryneedle.__version__, "parallel_read_safe": True,
            "parallel_write_safe": True}
