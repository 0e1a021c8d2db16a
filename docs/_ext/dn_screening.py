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

from typing import Any, ClassVar

from dn_nodes import Content, GeneratedDirective, builtin_policies, code, joined, table, xref
from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx

import dryneedle
from dryneedle.findings import EFFECT_DECISION, Decision, Effect, Rule, get_rule
from dryneedle.policy import POLICIES, Policy
from dryneedle.screening import rule_ids

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


# --- directives ---------------------------------------------------------------------------------


class PoliciesDirective(GeneratedDirective):
    """``dryneedle-policies``: every screening rule under every built-in policy, side by side."""

    option_spec: ClassVar[dict[str, Any]] = {"changed-only": directives.flag}

    def generate(self) -> list[nodes.Node]:
        doc = self.env.docname
        policies = builtin_policies()
        rules = screening_rules()
        if "changed-only" in self.options:
            rules = tuple(r for r in rules if any(p.rule_override(r.id) for p in policies))
        rows: list[list[Content]] = []
        for rule in rules:
            cells: list[Content] = [xref(doc, "rule", rule.id), rule.title]
            for p in policies:
                cells.append(outcome(rule, p))
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
                    notes.extend(joined([xref(doc, "source", s) for s in o.sources]))
                    notes.append(nodes.Text(")"))
            cells.append(notes or "\u2014")
            cells.append(joined([xref(doc, "source", s) for s in rule.sources]))
            rows.append(cells)
        return [table(
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


class DecisionsDirective(GeneratedDirective):
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
        rows: list[list[Content]] = []
        for decision in DECISIONS_STRICT_FIRST:
            rules = by_decision[decision]
            if decision is Decision.ELIGIBLE:
                why: list[nodes.Node] = [nodes.Text("no finding of the rules above")]
            else:
                why = joined([xref(doc, "rule", r.id) for r in rules])
            rows.append([code(decision.value), why])
        return [table(
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
