"""Findings, decisions and the rule registry.

A :class:`Finding` is a value: a stable dotted ``code`` (the id of the :class:`Rule` that
produced it), a :class:`Severity`, a ``path`` into the input (record-format shape, e.g.
``session.insertions[0].depth_mm``; ``""`` for the whole input), a plain-language ``message``
(never containing patient identifiers; message text is not API, codes are) and the ``sources``
behind it.

Rules are data: every rule is declared once in ``src/dryneedle/data/rules.toml`` with its id,
title, default severity, rationale, sources, the policy limits it reads and the module that
implements it, so the CLI (``dryneedle rules``) and the documentation's rule catalog render the
same registry, and a finding code leads to its rule's data and code in one hop. Rule modules
bind their rules with :func:`rule`.

Layer: findings. May import :mod:`dryneedle.sources` only (never a rule module: the registry is
data, so there is no import cycle).

>>> from dryneedle.findings import Finding, Severity
>>> f = Finding(code="structure.type", severity=Severity.ERROR, path="session.number",
...             message="expected an integer, got a string")
>>> f.as_dict()["severity"]
'error'
"""

from __future__ import annotations

import enum
import tomllib
import types
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from dryneedle.exports import data_text
from dryneedle.sources import SOURCES

__all__ = [
    "DECISION_ORDER",
    "EFFECT_DECISION",
    "EFFECT_SEVERITY",
    "Decision",
    "Effect",
    "Finding",
    "FindingsError",
    "Rule",
    "Severity",
    "all_rules",
    "get_rule",
    "register",
    "rule",
    "rule_ids_of",
]


class Severity(enum.StrEnum):
    """How serious a finding is; ``error`` makes a record invalid."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Decision(enum.StrEnum):
    """A screening decision (string values are part of the contract)."""

    ELIGIBLE = "eligible"
    ELIGIBLE_WITH_PRECAUTIONS = "eligible_with_precautions"
    NEEDS_REVIEW = "needs_review"
    NOT_ELIGIBLE = "not_eligible"


DECISION_ORDER: Mapping[Decision, int] = types.MappingProxyType(
    {
        Decision.ELIGIBLE: 0,
        Decision.ELIGIBLE_WITH_PRECAUTIONS: 1,
        Decision.NEEDS_REVIEW: 2,
        Decision.NOT_ELIGIBLE: 3,
    }
)
"""Decisions from most to least permissive (used for monotonicity and aggregation)."""


class Effect(enum.StrEnum):
    """What a screening finding does to the decision.

    ``exclude`` gives ``not_eligible``; ``review`` gives ``needs_review``; ``precaution`` gives
    ``eligible_with_precautions``; ``note`` changes nothing.
    """

    EXCLUDE = "exclude"
    REVIEW = "review"
    PRECAUTION = "precaution"
    NOTE = "note"


EFFECT_DECISION: Mapping[Effect, Decision | None] = types.MappingProxyType(
    {
        Effect.EXCLUDE: Decision.NOT_ELIGIBLE,
        Effect.REVIEW: Decision.NEEDS_REVIEW,
        Effect.PRECAUTION: Decision.ELIGIBLE_WITH_PRECAUTIONS,
        Effect.NOTE: None,
    }
)
"""The decision a screening finding's effect leads to (``note`` leads to none)."""

EFFECT_SEVERITY: Mapping[Effect, Severity] = types.MappingProxyType(
    {
        Effect.EXCLUDE: Severity.ERROR,
        Effect.REVIEW: Severity.WARNING,
        Effect.PRECAUTION: Severity.WARNING,
        Effect.NOTE: Severity.INFO,
    }
)
"""The default severity of a screening finding with each effect."""


@attrs.frozen(kw_only=True)
class Finding:
    """One problem or note about an input, with its basis.

    Attributes:
        code: Stable dotted rule id (e.g. ``screening.pregnancy``).
        severity: ``error``, ``warning`` or ``info``.
        path: Where in the input (record-format shape); ``""`` is the whole input.
        message: Plain-language explanation (no patient identifiers).
        sources: Source ids (see :mod:`dryneedle.sources`).
    """

    code: str
    severity: Severity
    path: str
    message: str
    sources: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Return the finding in the report contract's JSON shape."""
        return {
            "code": self.code,
            "severity": self.severity.value,
            "path": self.path,
            "message": self.message,
            "sources": list(self.sources),
        }


class FindingsError(ValueError):
    """An input could not be structured; ``findings`` holds *every* problem found.

    The ``validate()``-style helpers raise it with all problems at once (never the first only).
    """

    what = "input"
    """What could not be structured, as named in the message."""

    def __init__(self, findings: Iterable[Finding]) -> None:
        self.findings: tuple[Finding, ...] = tuple(findings)
        lines = [f"{f.path or f'<{self.what}>'}: {f.message} [{f.code}]" for f in self.findings]
        super().__init__(
            f"{len(self.findings)} problem(s) in {self.what}:\n  " + "\n  ".join(lines)
        )


@attrs.frozen(kw_only=True)
class Rule:
    """A registered rule: what it checks, how serious it is by default, and why.

    Attributes:
        id: Stable dotted id, also the ``code`` of its findings. Never reused.
        title: Short title.
        severity: Default severity of its findings.
        rationale: Why the rule exists, in plain language.
        sources: Source ids.
        effect: For screening rules, what the finding does to the decision.
        limits: Names of the :class:`~dryneedle.policy.Policy` limits the rule reads.
        category: ``structure``, ``screening``, ``protocol``, ``series`` or ``aftercare``.
        module: The module whose code emits the rule's findings (``None`` for a rule an
            extension registers without saying).
        floor: Whether the rule is a safety floor (SPEC §1.1): a fail-closed rule (an
            "unknown ⇒ review" rule, a physical impossibility, a triage emergency) that no
            policy may weaken: an override may only make it stricter (see
            :mod:`dryneedle.policy`).
    """

    id: str
    title: str
    severity: Severity
    rationale: str
    sources: tuple[str, ...] = ()
    effect: Effect | None = None
    limits: tuple[str, ...] = ()
    module: str | None = attrs.field(default=None, kw_only=True)
    floor: bool = False
    category: str = attrs.field()

    @category.default
    def _category_from_id(self) -> str:
        return self.id.split(".", 1)[0]

    @property
    def clinic_policy_default(self) -> bool:
        """Whether the rule's only basis is grade C (every source a clinic-policy default).

        Such a rule says "clinic policy default" wherever it is shown (SOURCES.md).

        >>> from dryneedle.findings import rule
        >>> rule("screening.epilepsy").clinic_policy_default
        True
        >>> rule("screening.pregnancy").clinic_policy_default
        False
        """
        return bool(self.sources) and all(
            SOURCES[s].grade == "C" for s in self.sources if s in SOURCES
        )


_RULES_FILE = "rules.toml"
_REGISTRY: dict[str, Rule] = {}
_loaded = False


def _load_catalog() -> None:
    """Read ``data/rules.toml`` once: every rule's declaration, checked against the sources."""
    global _loaded  # noqa: PLW0603 - a load-once cache of immutable data
    if _loaded:
        return
    text = data_text(_RULES_FILE)
    declared = tomllib.loads(text)
    for source in declared["header"]["sources"]:
        if source not in SOURCES:
            msg = f"data/rules.toml header cites unknown source {source!r}"
            raise ValueError(msg)
    for entry in declared["rule"]:
        try:
            rule = Rule(
                id=entry["id"],
                title=entry["title"],
                severity=Severity(entry["severity"]),
                rationale=entry["rationale"],
                sources=tuple(entry["sources"]),
                effect=Effect(entry["effect"]) if "effect" in entry else None,
                limits=tuple(entry.get("limits", ())),
                module=entry["module"],
                floor=_floor_flag(entry),
                **({"category": entry["category"]} if "category" in entry else {}),
            )
        except (KeyError, ValueError, TypeError) as exc:
            msg = f"data/rules.toml: rule {entry.get('id')!r} is malformed: {exc!r}"
            raise ValueError(msg) from exc
        _add(rule, where="data/rules.toml")
    _loaded = True


def _floor_flag(entry: Mapping[str, Any]) -> bool:
    value = entry.get("floor", False)
    if not isinstance(value, bool):
        msg = f"floor must be true or false, got {value!r}"
        raise TypeError(msg)
    return value


def _add(rule: Rule, *, where: str) -> None:
    existing = _REGISTRY.get(rule.id)
    if existing is not None and existing != rule:
        msg = f"rule id {rule.id!r} is already registered"
        raise ValueError(msg)
    unknown = [s for s in rule.sources if s not in SOURCES]
    if unknown:
        msg = f"{where}: rule {rule.id!r} cites unknown sources {unknown}"
        raise ValueError(msg)
    _REGISTRY[rule.id] = rule


def register(rule: Rule) -> Rule:
    """Register a rule declared in code (an extension's rule; the library's own are data).

    The library declares its rules in ``data/rules.toml``; :func:`register` lets an extension
    add one with the same checks.

    Args:
        rule: The rule.

    Returns:
        The same rule, so modules can keep a constant.

    Raises:
        ValueError: If another rule already has this id, or a source id is unknown.
    """
    _load_catalog()
    _add(rule, where="register()")
    return rule


def rule(rule_id: str) -> Rule:
    """Return the declared rule with this id: how a rule module binds its rules.

    A rule module writes ``PREGNANCY: Final = rule("screening.pregnancy")``; the declaration
    (title, severity, rationale, sources, limits) lives in ``data/rules.toml``.

    Raises:
        KeyError: If ``data/rules.toml`` declares no rule with this id.

    >>> from dryneedle.findings import rule
    >>> rule("screening.pregnancy").module
    'dryneedle._screening.rules'
    """
    _load_catalog()
    return _REGISTRY[rule_id]


def rule_ids_of(module: str) -> tuple[str, ...]:
    """Return the ids of the rules a module implements, in declaration order.

    Args:
        module: A module name, e.g. ``"dryneedle._protocol.rules"``.

    >>> from dryneedle.findings import rule_ids_of
    >>> "protocol.lung.both_sides" in rule_ids_of("dryneedle._protocol.rules")
    True
    """
    _load_catalog()
    return tuple(r.id for r in _REGISTRY.values() if r.module == module)


def all_rules() -> tuple[Rule, ...]:
    """Return every rule, sorted by id.

    >>> from dryneedle.findings import all_rules
    >>> any(r.id == "structure.type" for r in all_rules())
    True
    """
    _load_catalog()
    return tuple(sorted(_REGISTRY.values(), key=lambda r: r.id))


def get_rule(rule_id: str) -> Rule:
    """Return the rule with this id.

    Raises:
        KeyError: If no rule has this id.
    """
    _load_catalog()
    return _REGISTRY[rule_id]
