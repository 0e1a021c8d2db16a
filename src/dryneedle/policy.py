"""Policies: every numeric limit with its cited default, and per-rule overrides.

A :class:`Policy` holds the numbers the rules read (minimum age, depth ranges, dwell limits,
needle counts, ...), each with a unit and the sources behind its default, plus per-rule
overrides of severity and (for screening rules) of the effect on the decision. A clinic can
change a limit or a rule with :meth:`Policy.override`, which requires a recorded justification.
Every result is stamped with the policy's :attr:`~Policy.fingerprint` and the library version.

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
import math
import types
from collections.abc import Mapping
from typing import Any

import attrs

from dryneedle.findings import EFFECT_SEVERITY, Effect, Severity

__all__ = [
    "DEFAULT_POLICY",
    "FAIL_CLOSED",
    "GUIDELINE_POLICY",
    "POLICIES",
    "Change",
    "Limit",
    "Policy",
    "RuleOverride",
    "get_policy",
    "load_policy",
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
    """

    name: str
    value: float
    default: float
    unit: str
    sources: tuple[str, ...]
    doc: str


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
    return attrs.field(
        default=default, metadata={"unit": unit, "sources": sources, "doc": doc, "limit": True}
    )


# Rules that stand for "unknown is never safe" (SPEC §1.1): no policy may weaken them below the
# floor given here, or a missing answer could read as safe.
FAIL_CLOSED: Mapping[str, tuple[Effect | None, Severity | None]] = types.MappingProxyType({
    "screening.unknown_answer": (Effect.REVIEW, Severity.WARNING),
    "screening.birth_date_implausible": (Effect.REVIEW, Severity.ERROR),
    "protocol.needle.length.unknown": (None, Severity.WARNING),
    "protocol.screening.needs_review": (None, Severity.WARNING),
    "protocol.depth.beyond_longest_needle": (None, Severity.ERROR),
    "aftercare.triage.timing_unknown": (None, Severity.WARNING),
    "aftercare.triage.severe_symptom": (None, Severity.WARNING),
    "aftercare.triage.unlisted_symptom": (None, Severity.WARNING),
    # Warning signs stay warning signs: their messages tell the patient to get care.
    "aftercare.triage.lung_symptoms": (None, Severity.ERROR),
    "aftercare.triage.chest_symptoms": (None, Severity.WARNING),
    "aftercare.triage.infection_signs": (None, Severity.WARNING),
    "aftercare.triage.fainting": (None, Severity.WARNING),
    "aftercare.triage.bleeding": (None, Severity.WARNING),
})
"""Rules no policy may weaken below (minimum effect, minimum severity)."""

_EFFECT_RANK = {Effect.NOTE: 0, Effect.PRECAUTION: 1, Effect.REVIEW: 2, Effect.EXCLUDE: 3}
_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}


def _check_fail_closed(o: RuleOverride) -> None:
    floor = FAIL_CLOSED.get(o.rule_id)
    if floor is None:
        return
    min_effect, min_severity = floor
    if min_effect is not None and o.effect is not None and (
        _EFFECT_RANK[o.effect] < _EFFECT_RANK[min_effect]
    ):
        msg = (f"rule {o.rule_id!r} keeps unknown answers from reading as safe: its effect "
               f"cannot go below {min_effect.value!r}")
        raise ValueError(msg)
    if min_severity is not None and o.severity is not None and (
        _SEVERITY_RANK[o.severity] < _SEVERITY_RANK[min_severity]
    ):
        msg = (f"rule {o.rule_id!r} keeps unknown or severe symptoms from reading as expected: "
               f"its severity cannot go below {min_severity.value!r}")
        raise ValueError(msg)


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
                out.append(
                    Limit(
                        name=f.name,
                        value=getattr(self, f.name),
                        default=f.default,
                        unit=f.metadata["unit"],
                        sources=f.metadata["sources"],
                        doc=f.metadata["doc"],
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
        limits: Mapping[str, float] | None = None,
        rules: Mapping[str, Mapping[str, str]] | None = None,
    ) -> Policy:
        """Return a new policy with changed limits and/or rule overrides.

        Args:
            justification: Why (required, recorded in :attr:`changes`).
            name: Name of the new policy (defaults to ``"<base>+override"``).
            limits: New values by limit name.
            rules: Per rule id, a mapping with ``severity`` and/or ``effect`` values.

        Returns:
            The new policy (this one is unchanged).

        Raises:
            ValueError: On an empty justification, an unknown limit, rule or value.
        """
        if not justification.strip():
            msg = "a policy override needs a justification"
            raise ValueError(msg)
        from dryneedle.findings import get_rule  # noqa: PLC0415

        changes = list(self.changes)
        values: dict[str, Any] = {}
        known = {lim.name: lim for lim in self.limits()}
        for key, value in (limits or {}).items():
            if key not in known:
                msg = f"unknown policy limit {key!r}; known: {sorted(known)}"
                raise ValueError(msg)
            if isinstance(value, bool) or not isinstance(value, int | float):
                msg = f"limit {key!r} must be a number"
                raise ValueError(msg)
            if not math.isfinite(value):
                msg = f"limit {key!r} must be finite"
                raise ValueError(msg)
            current = getattr(self, key)
            if isinstance(current, int) and value != int(value):
                msg = f"limit {key!r} must be a whole number of {known[key].unit}"
                raise ValueError(msg)
            values[key] = int(value) if isinstance(current, int) else float(value)
            changes.append(
                Change(what=key, old=current, new=values[key], justification=justification)
            )
        overrides = list(self.rule_overrides)
        for rule_id, spec in (rules or {}).items():
            get_rule(rule_id)  # raises KeyError for an unknown rule
            unknown_keys = set(spec) - {"severity", "effect"}
            if unknown_keys:
                msg = f"unknown keys {sorted(unknown_keys)} for rule {rule_id!r}"
                raise ValueError(msg)
            sev = Severity(spec["severity"]) if "severity" in spec else None
            eff = Effect(spec["effect"]) if "effect" in spec else None
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
    :meth:`Policy.override`.

    >>> from dryneedle.policy import load_policy
    >>> p = load_policy({"base": "guideline", "name": "clinic-y",
    ...                  "justification": "Board decision 2026-03",
    ...                  "limits": {"recent_surgery_days": 60}})
    >>> p.name, p.recent_surgery_days
    ('clinic-y', 60)

    Raises:
        ValueError: On a missing justification or unknown keys.
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
    base = get_policy(str(data.get("base", "default")))
    return base.override(
        justification=str(data.get("justification", "")),
        name=str(data["name"]) if "name" in data else None,
        limits=data.get("limits"),
        rules=data.get("rules"),
    )
