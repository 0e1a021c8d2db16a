"""Policies: every numeric limit with its cited default, and per-rule overrides.

A :class:`Policy` holds the numbers the rules read (minimum age, depth ranges, dwell limits,
needle counts, ...), each with a unit and the sources behind its default, plus per-rule
overrides of severity and (for screening rules) of the effect on the decision. A clinic can
change a limit or a rule with :meth:`Policy.override`, which requires a recorded justification.
Every result is stamped with the policy's :attr:`~Policy.fingerprint` and the library version.

Safety floors (SPEC §1.1): a policy can never weaken a fail-closed rule (``floor = true`` in
``data/rules.toml``: every "unknown ⇒ review" rule, the physical impossibilities, the triage
emergencies), by severity or by effect (the severity an effect implies counts): an override
may only make it stricter. Every limit has a type, a unit and a plausible range
(:attr:`Limit.minimum` .. :attr:`Limit.maximum`); limits that are floors may only move
towards :attr:`Limit.stricter` from their built-in default; cross-limit orderings hold
(``dwell_min_s <= dwell_max_s``, every depth limit within ``needle_length_max_mm``). A refused
override raises :class:`ValueError` naming the rule or limit. There is no way to switch a rule
off: an override names a severity and/or an effect, nothing else.

Two policies are built in:

* :data:`DEFAULT_POLICY` (``default``) follows the seed: conservative.
* :data:`GUIDELINE_POLICY` (``guideline``) follows za-bn121 / apta-2013 / munoz-2022 where they
  are more permissive: bleeding tendency, antithrombotics and compromised immunity become
  precautions (deep needling of a muscle without palpable haemostasis stays excluded), pregnancy
  and children under the minimum age go to clinician review.

>>> from dryneedle.policy import DEFAULT_POLICY
>>> DEFAULT_POLICY.min_age_years
12
>>> stricter = DEFAULT_POLICY.override(
...     name="clinic-x", limits={"recent_surgery_days": 180},
...     justification="Surgeons' consensus at clinic X")
>>> stricter.recent_surgery_days, stricter.fingerprint != DEFAULT_POLICY.fingerprint
(180, True)
"""

from __future__ import annotations

import functools
import hashlib
import json
import types
from collections.abc import Mapping
from typing import Any, Final, TypeVar

import attrs

from dryneedle import _policy_limits
from dryneedle._policy_limits import (
    LIMIT_SPECS,
    check_limit_value,
    check_limit_values,
    check_rule_override,
    decode_policy_json,
)
from dryneedle.findings import EFFECT_SEVERITY, Effect, Severity, all_rules, get_rule

__all__ = [
    "DEFAULT_POLICY",
    "FAIL_CLOSED",
    "GUIDELINE_POLICY",
    "MAX_POLICY_BYTES",
    "POLICIES",
    "Change",
    "Limit",
    "Policy",
    "RuleOverride",
    "get_policy",
    "load_policy",
    "loads_policy",
]


@attrs.frozen(kw_only=True)
class Limit:
    """Description of one policy limit (for docs and audit).

    Attributes:
        name: Attribute name on :class:`Policy`.
        value: Value in the policy it was read from.
        default: Default value of the built-in default policy.
        unit: Unit of the value.
        sources: Sources of the default.
        doc: What the limit means.
        kind: ``"int"`` or ``"float"``: the type a policy file must give.
        minimum: Lowest plausible value (``None`` only for a limit declared without one).
        maximum: Highest plausible value.
        minimum_exclusive: Whether ``minimum`` itself is refused (depths are ``> 0``).
        stricter: The cautious direction: ``"higher"``, ``"lower"`` or ``None``
            (a definitional limit).
        floor: Whether the limit is a safety floor: a policy may move it only towards
            ``stricter`` from :attr:`default`.
    """

    name: str
    value: float
    default: float
    unit: str
    sources: tuple[str, ...]
    doc: str
    kind: str = "float"
    minimum: float | None = None
    maximum: float | None = None
    minimum_exclusive: bool = False
    stricter: str | None = None
    floor: bool = False

    @property
    def range_text(self) -> str:
        """The plausible range and direction in words (for docs and messages).

        >>> from dryneedle.policy import DEFAULT_POLICY
        >>> lim = {x.name: x for x in DEFAULT_POLICY.limits()}
        >>> lim["min_age_years"].range_text
        'int, 0 <= value <= 25 years; safety floor: may only increase'
        """
        if self.minimum is None or self.maximum is None:
            return self.kind
        low = "<" if self.minimum_exclusive else "<="
        text = (f"{self.kind}, {self.minimum:g} {low} value <= {self.maximum:g} "
                f"{self.unit}")
        if self.floor:
            way = "increase" if self.stricter == "higher" else "decrease"
            text += f"; safety floor: may only {way}"
        elif self.stricter is not None:
            text += f"; stricter when {self.stricter}"
        return text


@attrs.frozen(kw_only=True)
class RuleOverride:
    """A per-rule override of severity and/or screening effect, with its justification.

    Attributes:
        rule_id: The rule overridden.
        severity: New severity (``None`` keeps the rule's, or the one implied by ``effect``).
        effect: New screening effect (``None`` keeps the rule's).
        justification: Why (recorded and shown in the docs and audit trail).
        sources: Sources supporting the override, if any.
    """

    rule_id: str
    severity: Severity | None = None
    effect: Effect | None = None
    justification: str
    sources: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class Change:
    """An entry of a policy's audit trail: what was changed from its base, and why."""

    what: str
    old: Any
    new: Any
    justification: str


def _limit(default: float, *, unit: str, sources: tuple[str, ...], doc: str) -> Any:
    # Type, plausible range, direction and floor flag: dryneedle._policy_limits.LIMIT_SPECS.
    return attrs.field(
        default=default, metadata={"unit": unit, "sources": sources, "doc": doc, "limit": True}
    )


MAX_POLICY_BYTES: Final = _policy_limits.MAX_POLICY_BYTES
"""Largest policy file :func:`loads_policy` accepts (bytes): a larger one, or an endless
stream such as ``/dev/zero``, is refused; read at most this many bytes plus one."""

# The safety floors (SPEC §1.1) are data: ``floor = true`` in data/rules.toml.
FAIL_CLOSED: Mapping[str, tuple[Effect | None, Severity | None]] = types.MappingProxyType(
    {r.id: (r.effect, r.severity) for r in all_rules() if r.floor}
)
"""The floor rules and the (effect, severity) no policy may weaken them below.

Derived from the registry (``floor = true`` in ``data/rules.toml``); the check itself reads
:attr:`dryneedle.findings.Rule.floor`, so an extension's floor rule is kept too.
"""


def _check_fail_closed(o: RuleOverride) -> None:
    try:
        declared = get_rule(o.rule_id)
    except KeyError:  # an unknown rule is refused by Policy.override; nothing to weaken
        return
    check_rule_override(declared, o.severity, o.effect)


@attrs.frozen(kw_only=True)
class Policy:
    """Numeric limits with cited defaults, and per-rule overrides.

    Create variants with :meth:`override`; every change is recorded in :attr:`changes`.
    """

    name: str = "default"
    """Name of the policy (``default``, ``guideline`` or a clinic's own)."""

    min_age_years: int = _limit(
        12, unit="years", sources=("seed",),
        doc="Patients younger than this are excluded (children under 12).",
    )
    max_age_years: int = _limit(
        120, unit="years", sources=("policy",),
        doc="An age above this is not plausible: the birth date is a data error (error at "
        "patient.birth_date), the age is unknown and the patient goes to review. Plausible "
        "range 100-150 years. Clinic policy default.",
    )
    adult_age_years: int = _limit(
        18, unit="years", sources=("policy",),
        doc="Patients from the minimum age up to this age are minors: precaution "
        "(guardian consent). Clinic policy default.",
    )
    recent_surgery_days: int = _limit(
        90, unit="days", sources=("policy",),
        doc="A surgery at a site within this many days excludes the site (undated surgery "
        "counts as recent). Clinic policy default.",
    )
    pregnancy_status_max_age_days: int = _limit(
        30, unit="days", sources=("policy",),
        doc="A pregnancy status read from an EHR (FHIR Observation) counts only when dated "
        "within this many days before the evaluation date; older or undated ones leave the "
        "answer unknown (SPEC 8). Plausible range 0-280 days (a pregnancy lasts about 40 "
        "weeks). Clinic policy default.",
    )
    superficial_min_depth_mm: float = _limit(
        5.0, unit="mm", sources=("seed", "baldry-2002"),
        doc="Smallest depth of the superficial technique (inclusive).",
    )
    superficial_max_depth_mm: float = _limit(
        10.0, unit="mm", sources=("seed", "baldry-2002"),
        doc="Largest depth of the superficial technique (inclusive).",
    )
    deep_min_depth_mm: float = _limit(
        10.0, unit="mm", sources=("seed",),
        doc="The deep technique goes beyond the subcutaneous tissue: deeper than this "
        "(exclusive).",
    )
    over_lung_max_depth_mm: float = _limit(
        31.0, unit="mm", sources=("za-bn121",),
        doc="Over the lung, where the catalog gives no muscle limit, a depth at or beyond "
        "this without ultrasound guidance is an error (a 3.1 cm needle reached lung).",
    )
    pleura_depth_margin_mm: float = _limit(
        0.0, unit="mm", sources=("chen-2018", "policy"),
        doc="Margin taken off the catalog's depth to the pleura (upper trapezius: 14.6 mm "
        "female, other or unknown sex, 17.4 mm male, chen-2018) before an insertion counts as "
        "reaching it. The catalog gives means, so a shallower pleura is common: a clinic may "
        "set a margin (stricter only; plausible range 0-10 mm). Clinic policy default 0.",
    )
    dwell_min_s: float = _limit(
        2.0, unit="s", sources=("seed",), doc="Shortest static dwell time (inclusive).",
    )
    dwell_max_s: float = _limit(
        1200.0, unit="s", sources=("seed",),
        doc="Longest static dwell time (inclusive): 20 minutes.",
    )
    first_session_max_needles: int = _limit(
        2, unit="needles", sources=("seed", "za-bn121"),
        doc="Most needles in a patient's first session (avoid over-needling at first).",
    )
    needle_diameter_min_mm: float = _limit(
        0.12, unit="mm", sources=("policy",),
        doc="Smallest plausible filiform needle diameter. Clinic policy default.",
    )
    needle_diameter_max_mm: float = _limit(
        0.5, unit="mm", sources=("policy",),
        doc="Largest plausible filiform needle diameter. Clinic policy default.",
    )
    needle_length_min_mm: float = _limit(
        7.0, unit="mm", sources=("policy",),
        doc="Shortest plausible needle length. Clinic policy default.",
    )
    needle_length_max_mm: float = _limit(
        150.0, unit="mm", sources=("policy",),
        doc="Longest plausible needle length. Clinic policy default.",
    )
    soreness_expected_max_h: float = _limit(
        36.0, unit="h", sources=("seed", "pns-review"),
        doc="Post-needling soreness is expected for 24-36 hours; beyond this, contact the "
        "clinic.",
    )
    bruising_expected_max_days: float = _limit(
        7.0, unit="days", sources=("seed",),
        doc="Bruising may last up to a week; beyond this, contact the clinic.",
    )

    rule_overrides: tuple[RuleOverride, ...] = ()
    """Per-rule severity / effect overrides (last one for a rule wins)."""

    changes: tuple[Change, ...] = attrs.field(default=(), eq=False)
    """Audit trail of changes from the base policy (not part of the fingerprint)."""

    _by_rule: Mapping[str, RuleOverride] = attrs.field(init=False, eq=False, repr=False)
    _fingerprint: str = attrs.field(init=False, eq=False, repr=False)
    _memo: dict[str, Any] = attrs.field(init=False, eq=False, repr=False, factory=dict)

    def __attrs_post_init__(self) -> None:
        by_rule = {o.rule_id: o for o in self.rule_overrides}
        for o in self.rule_overrides:
            _check_fail_closed(o)
        # Every route (the constructor, evolve, pickle, override, a policy file) checks every
        # limit's type, range, floor direction and the cross-limit orderings: a NaN, a string or
        # an out-of-range value given straight to Policy(...) is refused too.
        limit_fields = [f for f in attrs.fields(type(self)) if f.metadata.get("limit")]
        check_limit_values({f.name: getattr(self, f.name) for f in limit_fields},
                           {f.name: f.default for f in limit_fields})
        object.__setattr__(self, "_by_rule", types.MappingProxyType(by_rule))
        content = {
            "name": self.name,
            "limits": {lim.name: lim.value for lim in self.limits()},
            "rules": {
                rid: [o.severity and o.severity.value, o.effect and o.effect.value,
                      list(o.sources)]
                for rid, o in sorted(by_rule.items())
            },
        }
        blob = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
        object.__setattr__(self, "_fingerprint", hashlib.sha256(blob).hexdigest()[:16])

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by the init fields (the index, fingerprint and memo are rebuilt)."""
        fields = {str(a.alias): getattr(self, a.name) for a in attrs.fields(type(self)) if a.init}
        return (functools.partial(type(self), **fields), ())

    @property
    def memo(self) -> dict[str, Any]:
        """Per-policy scratch space where rule modules keep compiled constants and caches.

        Everything stored here is derived from the policy (which is immutable), so it is never
        stale; it is not part of equality or the fingerprint.
        """
        return self._memo

    @property
    def fingerprint(self) -> str:
        """A stable hash of everything in the policy that can change a result."""
        return self._fingerprint

    def limits(self) -> tuple[Limit, ...]:
        """Return every numeric limit with its value, default, unit and sources."""
        out = []
        for f in attrs.fields(type(self)):
            if f.metadata.get("limit"):
                spec = LIMIT_SPECS.get(f.name)
                contract: dict[str, Any] = {} if spec is None else {
                    "kind": spec.kind.__name__, "minimum": spec.minimum,
                    "maximum": spec.maximum, "minimum_exclusive": spec.minimum_exclusive,
                    "stricter": spec.stricter, "floor": spec.floor,
                }
                out.append(
                    Limit(
                        name=f.name,
                        value=getattr(self, f.name),
                        default=f.default,
                        unit=f.metadata["unit"],
                        sources=f.metadata["sources"],
                        doc=f.metadata["doc"],
                        **contract,
                    )
                )
        return tuple(out)

    def rule_override(self, rule_id: str) -> RuleOverride | None:
        """Return the override for a rule, if this policy has one."""
        return self._by_rule.get(rule_id)

    def effect_of(self, rule_id: str, default: Effect) -> Effect:
        """Return the screening effect of a rule under this policy."""
        o = self._by_rule.get(rule_id)
        if o is not None and o.effect is not None:
            return o.effect
        return default

    def severity_of(
        self, rule_id: str, default: Severity, effect: Effect | None = None
    ) -> Severity:
        """Return the severity of a rule's findings under this policy.

        An explicit severity override wins; otherwise an effect override implies the severity
        (exclude → error, review/precaution → warning, note → info); otherwise the default.
        """
        o = self._by_rule.get(rule_id)
        if o is not None:
            if o.severity is not None:
                return o.severity
            if o.effect is not None:
                return EFFECT_SEVERITY[o.effect]
        if effect is not None:
            return EFFECT_SEVERITY[effect]
        return default

    def override(
        self,
        *,
        justification: str,
        name: str | None = None,
        limits: Mapping[str, Any] | None = None,
        rules: Mapping[str, Mapping[str, str]] | None = None,
    ) -> Policy:
        """Return a new policy with changed limits and/or rule overrides.

        Args:
            justification: Why (required, recorded in :attr:`changes`).
            name: Name of the new policy (defaults to ``"<base>+override"``).
            limits: New values by limit name: a number, or ``{"value": n, "unit": "mm"}``
                (the unit must be the limit's).
            rules: Per rule id, a mapping with ``severity`` and/or ``effect`` values.

        Returns:
            The new policy (this one is unchanged).

        Raises:
            ValueError: On an empty justification, an unknown limit, rule key or value; a
                limit of the wrong type or unit, outside its plausible range, breaking a
                cross-limit ordering or weakening a floor limit; an override that would
                weaken a floor rule. The message names the limit or rule.
            KeyError: On an unknown rule.
        """
        if not justification.strip():
            msg = "a policy override needs a justification"
            raise ValueError(msg)
        changes = list(self.changes)
        values: dict[str, Any] = {}
        known = {lim.name: lim for lim in self.limits()}
        for key, given in (limits or {}).items():
            if key not in known:
                msg = f"unknown policy limit {key!r}; known: {sorted(known)}"
                raise ValueError(msg)
            value, unit = _value_and_unit(key, given)
            values[key] = check_limit_value(key, value, unit)
            current = getattr(self, key)
            changes.append(
                Change(what=key, old=current, new=values[key], justification=justification)
            )
        if values:
            merged = {name: values.get(name, lim.value) for name, lim in known.items()}
            check_limit_values(merged, {name: lim.default for name, lim in known.items()})
        overrides = list(self.rule_overrides)
        for rule_id, spec in (rules or {}).items():
            declared = get_rule(rule_id)  # raises KeyError for an unknown rule
            if not isinstance(spec, Mapping):  # decoded JSON: the annotation is a promise
                msg = f"the override of rule {rule_id!r} must be an object"  # type: ignore[unreachable]
                raise ValueError(msg)
            unknown_keys = set(spec) - {"severity", "effect"}
            if unknown_keys:
                msg = f"unknown keys {sorted(unknown_keys)} for rule {rule_id!r}"
                raise ValueError(msg)
            sev = _enum_value(Severity, rule_id, spec, "severity")
            eff = _enum_value(Effect, rule_id, spec, "effect")
            check_rule_override(declared, sev, eff)
            old = self._by_rule.get(rule_id)
            overrides.append(
                RuleOverride(rule_id=rule_id, severity=sev, effect=eff, justification=justification)
            )
            changes.append(
                Change(
                    what=rule_id,
                    old=None if old is None else [old.severity, old.effect],
                    new=[sev, eff],
                    justification=justification,
                )
            )
        return attrs.evolve(
            self,
            name=name or f"{self.name}+override",
            rule_overrides=tuple(overrides),
            changes=tuple(changes),
            **values,
        )

    def as_dict(self) -> dict[str, Any]:
        """Return the policy as JSON-ready data (name, fingerprint, limits, overrides)."""
        return {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "limits": {lim.name: lim.value for lim in self.limits()},
            "rule_overrides": [
                {
                    "rule_id": o.rule_id,
                    "severity": o.severity and o.severity.value,
                    "effect": o.effect and o.effect.value,
                    "justification": o.justification,
                    "sources": list(o.sources),
                }
                for o in self.rule_overrides
            ],
        }


def _value_and_unit(name: str, given: Any) -> tuple[Any, str | None]:
    """A limit given as a number, or as ``{"value": n, "unit": u}``."""
    if isinstance(given, Mapping):
        if set(given) - {"value", "unit"} or "value" not in given:
            msg = f"limit {name!r} must be a number or an object with 'value' and 'unit'"
            raise ValueError(msg)
        unit = given.get("unit")
        if unit is not None and not isinstance(unit, str):
            msg = f"the unit of limit {name!r} must be a string"
            raise ValueError(msg)
        return given["value"], unit
    return given, None


_E = TypeVar("_E", Severity, Effect)


def _enum_value(kind: type[_E], rule_id: str, spec: Mapping[str, Any], key: str) -> _E | None:
    """The override's ``severity`` or ``effect``, refused (naming the rule) when not valid."""
    if key not in spec:
        return None
    value = spec[key]
    if isinstance(value, str):
        try:
            return kind(value)
        except ValueError:
            pass
    allowed = ", ".join(m.value for m in kind)
    msg = f"rule {rule_id!r}: {key} {value!r} is not one of {allowed}"
    raise ValueError(msg)


DEFAULT_POLICY = Policy()
"""The seed-conservative default policy."""

_GUIDELINE_SOURCES = ("za-bn121", "apta-2013", "munoz-2022")

GUIDELINE_POLICY = Policy(
    name="guideline",
    rule_overrides=(
        RuleOverride(
            rule_id="screening.bleeding_disorder",
            effect=Effect.PRECAUTION,
            justification="Abnormal bleeding tendency is a relative contra-indication: light "
            "technique and haemostasis by palpation; deep non-compressible muscles stay excluded "
            "(screening.bleeding_risk_site).",
            sources=_GUIDELINE_SOURCES,
        ),
        RuleOverride(
            rule_id="screening.anticoagulant_therapy",
            effect=Effect.PRECAUTION,
            justification="Antithrombotics are not an absolute contra-indication; avoid deep "
            "non-compressible muscles.",
            sources=_GUIDELINE_SOURCES,
        ),
        RuleOverride(
            rule_id="screening.immunocompromised",
            effect=Effect.PRECAUTION,
            justification="Compromised immunity is a relative contra-indication.",
            sources=("za-bn121",),
        ),
        RuleOverride(
            rule_id="screening.pregnancy",
            effect=Effect.REVIEW,
            justification="The guideline sources do not list pregnancy as an absolute "
            "contra-indication, which is no evidence that it is safe: clinician judgement "
            "(clinic policy default).",
            sources=("za-bn121", "policy"),
        ),
        RuleOverride(
            rule_id="screening.age_minimum",
            effect=Effect.REVIEW,
            justification="The guideline sources do not list age as an absolute "
            "contra-indication, which is no evidence that it is safe: clinician judgement, "
            "consent via a guardian (clinic policy default).",
            sources=("za-bn121", "policy"),
        ),
    ),
)
"""The guideline policy (za-bn121 / apta-2013 / munoz-2022 where more permissive)."""

POLICIES: Mapping[str, Policy] = types.MappingProxyType(
    {"default": DEFAULT_POLICY, "guideline": GUIDELINE_POLICY}
)
"""The built-in policies by name."""


def get_policy(name: str) -> Policy:
    """Return a built-in policy by name (``default`` or ``guideline``).

    Raises:
        KeyError: For an unknown name.
    """
    return POLICIES[name]


def load_policy(data: Mapping[str, Any]) -> Policy:
    """Build a policy from JSON-ready data (e.g. a clinic's policy file).

    The data has ``base`` (a built-in policy name, default ``default``), ``name``,
    ``justification`` (required), and optional ``limits`` and ``rules`` as in
    :meth:`Policy.override`. Every limit is checked against its type, unit, plausible range
    and (for a floor) direction, and no rule override may weaken a floor rule.

    >>> from dryneedle.policy import load_policy
    >>> p = load_policy({"base": "guideline", "name": "clinic-y",
    ...                  "justification": "Board decision 2026-03",
    ...                  "limits": {"recent_surgery_days": 120}})
    >>> p.name, p.recent_surgery_days
    ('clinic-y', 120)
    >>> load_policy({"justification": "x", "limits": {"recent_surgery_days": -180}})
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: limit 'recent_surgery_days' = -180 is outside its plausible range (0 <= ...)

    Raises:
        ValueError: On a missing justification, unknown keys, or a refused limit or rule
            override (the message names it).
        KeyError: On an unknown base policy or rule.
    """
    if not isinstance(data, Mapping):  # decoded JSON: the annotation is a promise, not a check
        msg = "a policy file holds a JSON object"  # type: ignore[unreachable]
        raise ValueError(msg)
    for key in ("limits", "rules"):
        if key in data and not isinstance(data[key], Mapping):
            msg = f"{key!r} must be an object"
            raise ValueError(msg)
    rules = data.get("rules") or {}
    if not all(isinstance(v, Mapping) for v in rules.values()):
        msg = "each rule override must be an object with 'severity' and/or 'effect'"
        raise ValueError(msg)
    unknown = set(data) - {"base", "name", "justification", "limits", "rules"}
    if unknown:
        msg = f"unknown policy keys {sorted(unknown)}"
        raise ValueError(msg)
    for key in ("base", "name", "justification"):
        if key in data and not isinstance(data[key], str):
            msg = f"{key!r} must be a string"
            raise ValueError(msg)
    base = get_policy(data.get("base", "default"))
    return base.override(
        justification=data.get("justification", ""),
        name=data.get("name"),
        limits=data.get("limits"),
        rules=data.get("rules"),
    )


def loads_policy(raw: bytes | str) -> Policy:
    """Build a policy from the text of a policy file (JSON), bounded in size and nesting.

    A file larger than :data:`MAX_POLICY_BYTES` or nesting deeper than a policy ever needs is
    refused quickly (so ``--policy /dev/zero`` or a 100 000-deep file is an error, not a hang
    or a crash). Read at most ``MAX_POLICY_BYTES + 1`` bytes of a file and pass them here.

    >>> from dryneedle.policy import loads_policy
    >>> loads_policy('{"justification": "j", "limits": {"min_age_years": 14}}').min_age_years
    14

    Raises:
        ValueError: For a file too large, too deep, not JSON, or refused by
            :func:`load_policy`.
        KeyError: On an unknown base policy or rule.
    """
    return load_policy(decode_policy_json(raw))
