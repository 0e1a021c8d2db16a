"""Sphinx extension: reference pages generated from dryneedle's own registries.

Nothing here is hand-written content: every table is rendered at build time from the data the
library uses at run time, so the documentation cannot drift from the code.

Directives:

``dryneedle-rules``
    Every registered rule (:func:`dryneedle.findings.all_rules`), grouped by category: id (a
    link target), title, severity and screening effect under the ``default`` and ``guideline``
    policies (with the override's justification), the policy limits it reads with their
    values, rationale and sources (links into the bibliography). Option ``:category:`` renders
    one category only (without a heading).
``dryneedle-limits``
    Every numeric policy limit with its value under each built-in policy, unit, type,
    plausible range and direction (a safety floor may only move towards stricter), and
    sources.
``dryneedle-bibliography``
    Every source of :data:`dryneedle.sources.SOURCES`, grouped by grade, with what it supports
    and what cites it (rules, limits, muscles, conditions).
``dryneedle-muscles`` / ``dryneedle-conditions``
    The anatomy and condition catalogs.
``dryneedle-schema``
    The shipped JSON Schema of record format v1.
``dryneedle-cli``
    The ``dryneedle`` command's help, top level and every sub-command, from its parser.

Roles (cross-references, checked by ``-n``): ``{rule}`id```, ``{source}`id```,
``{limit}`name```.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import re
from collections.abc import Iterator, Sequence
from typing import Any

from dn_nodes import (
    Content,
    GeneratedDirective,
    builtin_policies,
    code,
    field_list,
    fmt_number,
    joined,
    para,
    table,
    xref,
)
from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx

import dryneedle
from dryneedle.catalog import CONDITIONS, MUSCLES
from dryneedle.findings import EFFECT_DECISION, Effect, Rule, all_rules
from dryneedle.policy import DEFAULT_POLICY, Policy
from dryneedle.sources import SOURCES, Source

CATEGORY_ORDER = ("structure", "screening", "protocol", "series", "aftercare")
CATEGORY_TITLES = {
    "structure": "Structure (record format)",
    "screening": "Screening",
    "protocol": "Protocol",
    "series": "Series of sessions",
    "aftercare": "Aftercare",
}
GRADE_TITLES = {
    "P": "Primary sources (grade P)",
    "S": "Secondary sources (grade S)",
    "C": "Clinic-policy defaults (grade C)",
}
GRADE_LABELS = {"P": "P - primary", "S": "S - secondary", "C": "C - clinic-policy default"}
CLINIC_POLICY = "policy"


# --- the directives' common base ----------------------------------------------------------------


class _Generated(GeneratedDirective):
    """A generated directive that defines sections and link targets; text shown verbatim."""

    verbatim = True

    def section(self, title: str, anchor: str) -> nodes.section:
        """Return a section with a stable id (``anchor``) registered in the document."""
        sec = nodes.section(ids=[anchor], names=[anchor])
        sec += nodes.title(title, title)
        self.state.document.note_implicit_target(sec, sec)
        return sec

    def target(self, objtype: str, name: str) -> nodes.target:
        """Return a link target for a ``rule``/``source``/``limit`` and register it."""
        anchor = nodes.make_id(f"{objtype}-{name}")
        node = nodes.target("", "", ids=[anchor])
        std = self.env.domains.standard_domain
        std.note_object(objtype, name, anchor, location=node)
        return node


# --- rules ------------------------------------------------------------------------------------


def _effect_text(effect: Effect) -> str:
    decision = EFFECT_DECISION[effect]
    return effect.value if decision is None else f"{effect.value} \u2192 {decision.value}"


def rule_outcome(rule: Rule, policy: Policy) -> str:
    """Severity (and, for screening rules, effect and decision) of a rule under a policy."""
    severity = policy.severity_of(rule.id, rule.severity).value
    if rule.effect is None:
        return severity
    return f"{severity}; {_effect_text(policy.effect_of(rule.id, rule.effect))}"


def _sorted_categories(rules: Sequence[Rule]) -> list[str]:
    cats = {r.category for r in rules}
    known = [c for c in CATEGORY_ORDER if c in cats]
    return known + sorted(cats - set(known))


class RulesDirective(_Generated):
    """``dryneedle-rules``: the rule catalog, generated from the registry."""

    option_spec = {"category": directives.unchanged}  # noqa: RUF012 - docutils API

    def generate(self) -> list[nodes.Node]:
        rules = all_rules()
        wanted = self.options.get("category")
        if wanted is not None:
            chosen = [r for r in rules if r.category == wanted]
            if not chosen:
                msg = f"no registered rule has category {wanted!r}"
                raise self.error(msg)
            return self.category_body(chosen)
        out: list[nodes.Node] = []
        for cat in _sorted_categories(rules):
            chosen = [r for r in rules if r.category == cat]
            sec = self.section(CATEGORY_TITLES.get(cat, cat.capitalize()), f"rules-{cat}")
            sec.extend(self.category_body(chosen))
            out.append(sec)
        return out

    def category_body(self, rules: Sequence[Rule]) -> list[nodes.Node]:
        policies = builtin_policies()
        doc = self.env.docname
        summary = table(
            ["Rule", "Title", *(f"{p.name} policy" for p in policies)],
            [
                [
                    [xref(doc, "rule", r.id)],
                    r.title,
                    *(rule_outcome(r, p) for p in policies),
                ]
                for r in rules
            ],
            [22, 34, *(22 for _ in policies)],
            classes=["dn-rule-summary"],
        )
        out: list[nodes.Node] = [summary]
        for r in rules:
            out.append(self.rule_entry(r, policies))
        return out

    def rule_entry(self, rule: Rule, policies: Sequence[Policy]) -> nodes.container:
        doc = self.env.docname
        box = nodes.container(classes=["dn-rule"])
        box += self.target("rule", rule.id)
        head = nodes.paragraph(classes=["dn-rule-head"])
        head += nodes.strong("", "", code(rule.id))
        head += nodes.Text(f" \u2014 {rule.title}")
        if CLINIC_POLICY in rule.sources:
            head += nodes.Text(" ")
            head += nodes.inline("", "clinic-policy default", classes=["dn-badge", "dn-badge-c"])
        if rule.floor:
            head += nodes.Text(" ")
            head += nodes.inline("", "safety floor", classes=["dn-badge", "dn-badge-floor"])
        box += head

        default = (f"{rule.severity.value}" if rule.effect is None
                   else f"{rule.severity.value}; {_effect_text(rule.effect)}")
        fields: list[tuple[str, Content]] = [
            ("Default", [nodes.Text(default)]),
        ]
        if rule.module is not None:
            # One hop from a finding code to the code that emits it (docs/architecture.md).
            fields.append(("Implemented in", [code(rule.module)]))
        if rule.floor:
            fields.append(("Floor", [nodes.Text(
                "safety floor (spec 1.1): a policy may make it stricter, never milder, by "
                "severity or by effect")]))
        overridden = nodes.bullet_list()
        for p in policies:
            o = p.rule_override(rule.id)
            if o is None:
                continue
            line = para(nodes.strong("", f"{p.name} policy: "), rule_outcome(rule, p),
                         f". {o.justification}")
            if o.sources:
                line += nodes.Text(" (")
                line.extend(joined([xref(doc, "source", s) for s in o.sources]))
                line += nodes.Text(")")
            item = nodes.list_item()
            item += line
            overridden += item
        if overridden.children:
            fields.append(("Overridden", overridden))
        if rule.limits:
            limit_nodes: list[nodes.Node] = []
            for name in rule.limits:
                unit = _limit_units().get(name, "")
                per = [(p.name, fmt_number(getattr(p, name))) for p in policies]
                if len({v for _, v in per}) == 1:
                    values = f"{per[0][1]} {unit}".strip()
                else:
                    values = ", ".join(f"{v} {unit} ({n})".replace("  ", " ") for n, v in per)
                limit_nodes.append(nodes.inline("", "", xref(doc, "limit", name),
                                                nodes.Text(f" = {values}")))
            fields.append(("Limits", joined(limit_nodes, "; ")))
        fields.append(("Rationale", [nodes.Text(rule.rationale)]))
        fields.append(("Sources", joined([xref(doc, "source", s) for s in rule.sources])
                       or [nodes.Text("none")]))
        box += field_list(fields)
        return box


def _limit_units() -> dict[str, str]:
    return {lim.name: lim.unit for lim in DEFAULT_POLICY.limits()}


class LimitsDirective(_Generated):
    """``dryneedle-limits``: every policy limit, its values, unit and sources."""

    def generate(self) -> list[nodes.Node]:
        doc = self.env.docname
        policies = builtin_policies()
        values = {p.name: {lim.name: lim.value for lim in p.limits()} for p in policies}
        users: dict[str, list[str]] = {}
        for r in all_rules():
            for name in r.limits:
                users.setdefault(name, []).append(r.id)
        rows = []
        for lim in DEFAULT_POLICY.limits():
            name_cell: list[nodes.Node] = [self.target("limit", lim.name), code(lim.name)]
            doc_cell: list[nodes.Node] = [nodes.Text(lim.doc)]
            if CLINIC_POLICY in lim.sources:
                doc_cell += [nodes.Text(" "), nodes.inline("", "clinic-policy default",
                                                      classes=["dn-badge", "dn-badge-c"])]
            if users.get(lim.name):
                doc_cell += [nodes.Text(" Read by: "),
                             *joined([xref(doc, "rule", r) for r in users[lim.name]])]
            rows.append([
                name_cell,
                *(f"{fmt_number(values[p.name][lim.name])}" for p in policies),
                lim.unit,
                lim.range_text,
                doc_cell,
                joined([xref(doc, "source", s) for s in lim.sources]),
            ])
        return [table(
            ["Limit", *(f"{p.name}" for p in policies), "Unit", "Type, range, direction",
             "Meaning", "Sources"],
            rows,
            [18, *(7 for _ in policies), 6, 18, 36, 14],
            classes=["dn-limits"],
        )]


# --- bibliography ---------------------------------------------------------------------------


def cited_by() -> dict[str, list[tuple[str, str]]]:
    """Map each source id to what cites it: (kind, name) with kind rule/limit/muscle/..."""
    out: dict[str, list[tuple[str, str]]] = {sid: [] for sid in SOURCES}

    def add(sid: str, kind: str, name: str) -> None:
        if (kind, name) not in out.setdefault(sid, []):
            out[sid].append((kind, name))

    for r in all_rules():
        for s in r.sources:
            add(s, "rule", r.id)
    for lim in DEFAULT_POLICY.limits():
        for s in lim.sources:
            add(s, "limit", lim.name)
    for p in builtin_policies():
        for o in p.rule_overrides:
            for s in o.sources:
                add(s, "policy", p.name)
    for m in MUSCLES.values():
        for s in m.sources:
            add(s, "muscle", m.id)
    for c in CONDITIONS.values():
        for s in c.sources:
            add(s, "condition", c.id)
    return out


class BibliographyDirective(_Generated):
    """``dryneedle-bibliography``: the source registry, grouped by grade."""

    def generate(self) -> list[nodes.Node]:
        citing = cited_by()
        out: list[nodes.Node] = []
        for grade in ("P", "S", "C"):
            group = [s for s in SOURCES.values() if s.grade == grade]
            if not group:
                continue
            sec = self.section(GRADE_TITLES[grade], f"sources-grade-{grade.lower()}")
            for s in group:
                sec += self.entry(s, citing.get(s.id, []))
            out.append(sec)
        return out

    def entry(self, source: Source, citing: Sequence[tuple[str, str]]) -> nodes.container:
        doc = self.env.docname
        box = nodes.container(classes=["dn-source"])
        box += self.target("source", source.id)
        head = nodes.paragraph(classes=["dn-source-head"])
        head += nodes.strong("", "", code(source.id))
        head += nodes.Text(" ")
        head += nodes.inline("", GRADE_LABELS[source.grade],
                             classes=["dn-badge", f"dn-badge-{source.grade.lower()}"])
        box += head
        ref = para(source.reference)
        if source.url:
            ref += nodes.Text(" ")
            ref += nodes.reference(source.url, source.url, refuri=source.url)
        fields: list[tuple[str, Content]] = [
            ("Reference", ref),
            ("Supports", [nodes.Text(source.supports)]),
        ]
        rules = [name for kind, name in citing if kind == "rule"]
        if rules:
            fields.append(("Rules", joined([xref(doc, "rule", r) for r in rules])))
        limits = [name for kind, name in citing if kind == "limit"]
        if limits:
            fields.append(("Policy limits", joined([xref(doc, "limit", n) for n in limits])))
        overrides = [name for kind, name in citing if kind == "policy"]
        if overrides:
            names = ", ".join(f"{n} policy" for n in overrides)
            fields.append(("Policy overrides", [nodes.Text(names)]))
        muscles = [name for kind, name in citing if kind == "muscle"]
        if muscles:
            fields.append(("Anatomy catalog", joined([code(m) for m in muscles])))
        conditions = [name for kind, name in citing if kind == "condition"]
        if conditions:
            fields.append(("Condition catalog", joined([code(c) for c in conditions])))
        box += field_list(fields)
        return box


# --- catalogs -------------------------------------------------------------------------------


class MusclesDirective(_Generated):
    """``dryneedle-muscles``: the anatomy catalog (muscle ids are part of the record format)."""

    def generate(self) -> list[nodes.Node]:
        doc = self.env.docname
        rows = []
        for m in MUSCLES.values():
            rows.append([
                [code(m.id)],
                m.name,
                [code(m.region.value)],
                "yes" if m.over_lung else "no",
                "yes" if m.palpable_haemostasis else "no",
                "\u2014" if m.depth_limit_mm is None else f"{fmt_number(m.depth_limit_mm)} mm",
                joined([xref(doc, "source", s) for s in m.sources]) or "\u2014",
            ])
        return [table(
            ["Muscle id", "Name", "Region", "Over lung", "Palpable haemostasis", "Depth limit",
             "Sources"],
            rows, [20, 20, 12, 8, 10, 8, 22], classes=["dn-muscles"],
        )]


class ConditionsDirective(_Generated):
    """``dryneedle-conditions``: the condition catalog with ICD-10-CM codes by edition."""

    def generate(self) -> list[nodes.Node]:
        doc = self.env.docname
        rows = []
        for c in CONDITIONS.values():
            codes = "; ".join(
                f"FY{first}+: {', '.join(c.codes[first])}" for first in sorted(c.codes)
            ) or "\u2014 (no code given by a source)"
            rows.append([
                [code(c.id)],
                c.name,
                "yes" if c.indication else "no (not an indication)",
                codes,
                joined([xref(doc, "source", s) for s in c.sources]) or "\u2014",
            ])
        return [table(
            ["Condition id", "Name", "Indication", "ICD-10-CM codes", "Sources"],
            rows, [22, 26, 12, 24, 16], classes=["dn-conditions"],
        )]


class SchemaDirective(_Generated):
    """``dryneedle-schema``: the JSON Schema of record format v1."""

    def generate(self) -> list[nodes.Node]:
        from dryneedle.records import json_schema  # noqa: PLC0415

        text = json.dumps(json_schema(), indent=2, ensure_ascii=False)
        block = nodes.literal_block(text, text, language="json", classes=["dn-schema"])
        return [block]


def docstring_attributes(cls: type) -> dict[str, str]:
    """Parse the ``Attributes:`` section of a Google-style class docstring."""
    doc = inspect.getdoc(cls) or ""
    out: dict[str, str] = {}
    lines = doc.splitlines()
    try:
        start = lines.index("Attributes:") + 1
    except ValueError:
        return out
    name = None
    for line in lines[start:]:
        if line and not line.startswith(" "):
            break
        m = re.match(r"^    (\w+)(?: \(.*?\))?: (.*)$", line)
        if m:
            name = m.group(1)
            out[name] = m.group(2).strip()
        elif name is not None and line.strip():
            out[name] += " " + line.strip()
    return out


def _schema_type(prop: dict[str, Any]) -> tuple[str, bool]:
    """A short description of a JSON Schema property's type, and whether ``null`` is allowed."""
    nullable = False
    if "anyOf" in prop:
        alts = [a for a in prop["anyOf"] if a.get("type") != "null"]
        nullable = len(alts) < len(prop["anyOf"])
        prop = alts[0]
    if "const" in prop:
        return f'"{prop["const"]}"', nullable
    if "$ref" in prop:
        return "object: " + prop["$ref"].rsplit("/", 1)[-1], nullable
    kind = prop.get("type", "any")
    if kind == "array":
        inner, _ = _schema_type(prop["items"])
        return f"array of {inner}", nullable
    if "enum" in prop:
        values = prop["enum"]
        if len(values) > 12:
            return f"string: one of {len(values)} ids", nullable
        return "string: " + " | ".join(values), nullable
    if prop.get("format") == "date":
        return "string: ISO date YYYY-MM-DD", nullable
    if "minimum" in prop:
        return f"{kind} \u2265 {prop['minimum']}", nullable
    return str(kind), nullable


_PY_TO_JSON = {"None": "null", "False": "false", "True": "true"}


def _json_rich(text: str) -> list[nodes.Node]:
    """Docstring text as nodes: ````x```` and ``:role:`x``` become code, Python constants JSON."""
    out: list[nodes.Node] = []
    pos = 0
    for m in re.finditer(r"``(.+?)``|:\w+:`~?(.+?)`", text):
        out.append(nodes.Text(text[pos:m.start()]))
        literal = m.group(1) or m.group(2)
        out.append(code(_PY_TO_JSON.get(literal, literal)))
        pos = m.end()
    out.append(nodes.Text(text[pos:]))
    return out


class FieldsDirective(_Generated):
    """``dryneedle-fields``: the fields of one object of record format v1.

    The argument is the object's name in the schema (``SessionRecord`` for the record itself);
    types come from the shipped JSON Schema, meanings from the model's docstrings.
    """

    required_arguments = 1

    def generate(self) -> list[nodes.Node]:
        from dryneedle import model  # noqa: PLC0415
        from dryneedle.records import json_schema  # noqa: PLC0415

        name = self.arguments[0]
        schema = json_schema()
        obj = schema if name == "SessionRecord" else schema["$defs"].get(name)
        if obj is None:
            raise self.error(f"record format v1 has no object {name!r}")
        meanings = docstring_attributes(getattr(model, name))
        required = set(obj.get("required", ()))
        rows = []
        for field, prop in obj["properties"].items():
            kind, nullable = _schema_type(prop)
            if field in required:
                need = "required"
            else:
                need = "optional; null or absent = unknown" if nullable else "optional"
            rows.append([[code(field)], kind, need, _json_rich(meanings.get(field, ""))])
        return [table(["Field", "Type", "Required", "Meaning"], rows, [18, 30, 16, 36],
                       classes=["dn-fields-table"])]


# --- CLI ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _help_width(columns: int) -> Iterator[None]:
    """Make argparse format help for a fixed width, independent of the terminal."""
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(columns)
    try:
        yield
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Return the sub-command parsers of ``parser``, by name, in registration order."""
    out: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:  # argparse has no public accessor
        if isinstance(action, argparse._SubParsersAction):
            out.update(action.choices)
    return out


class CliDirective(_Generated):
    """``dryneedle-cli``: the help of ``dryneedle`` and of each sub-command."""

    def generate(self) -> list[nodes.Node]:
        from dryneedle.cli import build_parser  # noqa: PLC0415

        with _help_width(92):
            parser = build_parser()
            top = parser.format_help()
            subs = {name: p.format_help() for name, p in subcommands(parser).items()}
        out: list[nodes.Node] = [nodes.literal_block(top, top, language="text")]
        for name, text in subs.items():
            sec = self.section(f"dryneedle {name}", f"cli-{name}")
            sec += nodes.literal_block(text, text, language="text")
            out.append(sec)
        return out


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directives and the ``rule``/``source``/``limit`` cross-reference types."""
    app.add_object_type("rule", "rule", objname="rule")
    app.add_object_type("source", "source", objname="source")
    app.add_object_type("limit", "limit", objname="policy limit")
    app.add_directive("dryneedle-rules", RulesDirective)
    app.add_directive("dryneedle-limits", LimitsDirective)
    app.add_directive("dryneedle-bibliography", BibliographyDirective)
    app.add_directive("dryneedle-muscles", MusclesDirective)
    app.add_directive("dryneedle-conditions", ConditionsDirective)
    app.add_directive("dryneedle-schema", SchemaDirective)
    app.add_directive("dryneedle-fields", FieldsDirective)
    app.add_directive("dryneedle-cli", CliDirective)
    return {"version": dryneedle.__version__, "parallel_read_safe": True,
            "parallel_write_safe": True}
