"""What a policy may say: each limit's type, plausible range and safe direction, and floors.

Private module behind :mod:`dryneedle.policy` (import the public names from there). SPEC §1
(1.1): a policy can never weaken a safety floor, by any route, and every limit has a plausible
range and type. This module holds that contract as data and the checks that enforce it:

* :data:`LIMIT_SPECS` -- per limit: type (``int`` / ``float``), unit, plausible range, the
  direction that is *stricter* (``higher``, ``lower`` or none for definitional limits) and
  whether the limit is a safety floor (it may then only move towards stricter from its
  built-in default);
* :data:`ORDERINGS` -- cross-limit orderings (``dwell_min_s <= dwell_max_s``, every depth
  limit within the longest plausible needle, ...);
* :func:`check_rule_override` -- a floor rule (``floor = true`` in ``data/rules.toml``) keeps
  at least its built-in severity and effect, whichever of them an override names (the severity
  implied by an effect counts);
* :func:`decode_policy_json` -- a policy file is bounded in size and nesting.

Every refusal is a :class:`ValueError` whose message names the limit or rule.

May import: findings (and the standard library). Layer: policy.
"""

from __future__ import annotations

import json
import math
import types
from collections.abc import Mapping
from typing import Any, Final, Literal

import attrs

from dryneedle.findings import (
    DECISION_ORDER,
    EFFECT_DECISION,
    EFFECT_SEVERITY,
    Effect,
    Rule,
    Severity,
)

__all__ = [
    "LIMIT_SPECS",
    "LONGEST_NEEDLE_MM",
    "MAX_POLICY_BYTES",
    "MAX_POLICY_DEPTH",
    "ORDERINGS",
    "LimitSpec",
    "check_floor_limit",
    "check_limit_value",
    "check_limit_values",
    "check_rule_override",
    "decode_policy_json",
    "effect_rank",
    "severity_rank",
]

Direction = Literal["higher", "lower"]

LONGEST_NEEDLE_MM: Final = 150.0
"""The longest plausible filiform needle (mm): the upper bound of every depth limit."""


@attrs.frozen(kw_only=True)
class LimitSpec:
    """The contract of one policy limit.

    Attributes:
        kind: ``int`` or ``float``.
        unit: Unit of the value (as in the limit's name).
        minimum: Lowest plausible value.
        maximum: Highest plausible value.
        minimum_exclusive: Whether ``minimum`` itself is refused (``> 0`` depths).
        stricter: Which way is more cautious: ``higher``, ``lower`` or ``None`` (a
            definitional limit with no safe direction).
        floor: Whether the limit is a safety floor: a policy may move it only towards
            ``stricter`` from the built-in default.
    """

    kind: type[int] | type[float]
    unit: str
    minimum: float
    maximum: float
    minimum_exclusive: bool = False
    stricter: Direction | None = None
    floor: bool = False

    def range_text(self) -> str:
        """The plausible range in words, e.g. ``0 < value <= 150 mm``."""
        low = "<" if self.minimum_exclusive else "<="
        return f"{_num(self.minimum)} {low} value <= {_num(self.maximum)} {self.unit}"


def _num(value: float) -> str:
    return f"{value:g}"


def _spec(kind: type[int] | type[float], unit: str, minimum: float, maximum: float, *,
          exclusive: bool = False, stricter: Direction | None = None,
          floor: bool = False) -> LimitSpec:
    return LimitSpec(kind=kind, unit=unit, minimum=minimum, maximum=maximum,
                     minimum_exclusive=exclusive, stricter=stricter, floor=floor)


LIMIT_SPECS: Final[Mapping[str, LimitSpec]] = types.MappingProxyType({
    # Screening. Ages are the only integers in years; windows never negative.
    "min_age_years": _spec(int, "years", 0, 25, stricter="higher", floor=True),
    "max_age_years": _spec(int, "years", 100, 150, stricter="lower"),
    "adult_age_years": _spec(int, "years", 0, 25, stricter="higher"),
    "recent_surgery_days": _spec(int, "days", 0, 3650, stricter="higher", floor=True),
    # FHIR input (issue #14 adds the limit): a pregnancy lasts about 40 weeks.
    "pregnancy_status_max_age_days": _spec(int, "days", 0, 280, stricter="lower"),
    # Protocol: depths are positive and within the longest plausible needle.
    "superficial_min_depth_mm": _spec(float, "mm", 0, LONGEST_NEEDLE_MM, exclusive=True),
    "superficial_max_depth_mm": _spec(float, "mm", 0, LONGEST_NEEDLE_MM, exclusive=True),
    "deep_min_depth_mm": _spec(float, "mm", 0, LONGEST_NEEDLE_MM, exclusive=True),
    "over_lung_max_depth_mm": _spec(float, "mm", 0, LONGEST_NEEDLE_MM, exclusive=True,
                                    stricter="lower", floor=True),
    # The catalog's depths to the pleura are means: a margin may only grow (stricter).
    "pleura_depth_margin_mm": _spec(float, "mm", 0, 10, stricter="higher", floor=True),
    "dwell_min_s": _spec(float, "s", 0, 3600),
    "dwell_max_s": _spec(float, "s", 0, 3600, exclusive=True, stricter="lower"),
    "first_session_max_needles": _spec(int, "needles", 1, 20, stricter="lower"),
    "needle_diameter_min_mm": _spec(float, "mm", 0, 2, exclusive=True),
    "needle_diameter_max_mm": _spec(float, "mm", 0, 2, exclusive=True),
    "needle_length_min_mm": _spec(float, "mm", 0, LONGEST_NEEDLE_MM, exclusive=True),
    "needle_length_max_mm": _spec(float, "mm", 0, LONGEST_NEEDLE_MM, exclusive=True,
                                  stricter="lower", floor=True),
    # Aftercare: the expected course, within a week of hours / a month of days.
    "soreness_expected_max_h": _spec(float, "h", 0, 168, stricter="lower"),
    "bruising_expected_max_days": _spec(float, "days", 0, 30, stricter="lower"),
})
"""Every policy limit's type, unit, plausible range, stricter direction and floor flag."""

ORDERINGS: Final[tuple[tuple[str, str, bool], ...]] = (
    # (lower, upper, strict): lower <= upper (or lower < upper when strict).
    ("min_age_years", "adult_age_years", False),
    ("superficial_min_depth_mm", "superficial_max_depth_mm", False),
    ("dwell_min_s", "dwell_max_s", False),
    ("needle_diameter_min_mm", "needle_diameter_max_mm", False),
    ("needle_length_min_mm", "needle_length_max_mm", False),
    ("superficial_max_depth_mm", "needle_length_max_mm", False),
    ("deep_min_depth_mm", "needle_length_max_mm", True),
    ("over_lung_max_depth_mm", "needle_length_max_mm", False),
)
"""Cross-limit orderings every policy keeps."""

MAX_POLICY_BYTES: Final = 1_000_000
"""Largest policy file read (bytes); a larger one (or ``/dev/zero``) is refused."""
MAX_POLICY_DEPTH: Final = 8
"""Deepest nesting of objects and arrays a policy file may have."""


def check_limit_value(name: str, value: Any, unit: str | None = None) -> int | float:
    """Check one limit value's type, unit and plausible range; return it typed.

    Args:
        name: The limit.
        value: The value (a JSON number; ``bool`` is refused).
        unit: The unit the value was given in, if the policy file said (must match).

    Raises:
        ValueError: Naming the limit, for a wrong type, unit or an implausible value.
    """
    spec = LIMIT_SPECS.get(name)
    if spec is None:
        msg = f"limit {name!r} has no declared type and range (dryneedle._policy_limits)"
        raise ValueError(msg)
    if unit is not None and unit != spec.unit:
        msg = f"limit {name!r} is in {spec.unit}, not {unit!r}"
        raise ValueError(msg)
    if isinstance(value, bool) or not isinstance(value, int | float):
        msg = f"limit {name!r} must be a number of {spec.unit}, got {type(value).__name__}"
        raise ValueError(msg)
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an integer beyond a double (10**400) is no plausible limit
        finite = False
    if not finite:
        msg = f"limit {name!r} must be finite"
        raise ValueError(msg)
    if spec.kind is int:
        if value != int(value):
            msg = f"limit {name!r} must be a whole number of {spec.unit}"
            raise ValueError(msg)
        typed: int | float = int(value)
    else:
        typed = float(value)
    low_ok = typed > spec.minimum if spec.minimum_exclusive else typed >= spec.minimum
    if not (low_ok and typed <= spec.maximum):
        msg = (f"limit {name!r} = {_num(typed)} is outside its plausible range "
               f"({spec.range_text()})")
        raise ValueError(msg)
    return typed


def check_floor_limit(name: str, value: Any, default: float) -> None:
    """Refuse a floor limit moved away from its stricter direction (NaN is not refused here).

    Raises:
        ValueError: Naming the limit.
    """
    spec = LIMIT_SPECS.get(name)
    if spec is None or not spec.floor or isinstance(value, bool):
        return
    if not isinstance(value, int | float):
        return
    weaker = value < default if spec.stricter == "higher" else value > default
    if weaker:
        way = "increase" if spec.stricter == "higher" else "decrease"
        msg = (f"limit {name!r} is a safety floor: it may only {way} from its built-in "
               f"{_num(default)} {spec.unit} (got {_num(value)})")
        raise ValueError(msg)


def check_limit_values(values: Mapping[str, Any], defaults: Mapping[str, float]) -> None:
    """Check a policy's limits: each in range and typed, floors kept, orderings kept.

    Args:
        values: Every limit's value in the policy.
        defaults: Every limit's built-in default.

    Raises:
        ValueError: Naming the first limit (or pair of limits) at fault.
    """
    for name, value in values.items():
        if name not in LIMIT_SPECS:  # reported by Policy.override when it is set
            continue
        check_limit_value(name, value)
        check_floor_limit(name, value, defaults[name])
    for low, high, strict in ORDERINGS:
        if low in values and high in values:
            a, b = values[low], values[high]
            if (a >= b) if strict else (a > b):
                sign = "<" if strict else "<="
                msg = (f"limits {low!r} ({_num(a)}) and {high!r} ({_num(b)}) must keep "
                       f"{low} {sign} {high}")
                raise ValueError(msg)


def severity_rank(severity: Severity) -> int:
    """Strength of a severity: ``info`` 0 < ``warning`` 1 < ``error`` 2."""
    return _SEVERITY_RANK[severity]


def effect_rank(effect: Effect) -> int:
    """Strength of a screening effect, by the decision it leads to (``note`` lowest)."""
    decision = EFFECT_DECISION[effect]
    return -1 if decision is None else DECISION_ORDER[decision]


_SEVERITY_RANK: Final = types.MappingProxyType(
    {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2})


def check_rule_override(rule: Rule, severity: Severity | None, effect: Effect | None) -> None:
    """Refuse an override that would make a floor rule weaker than its built-in strength.

    The severity compared is the one the override yields: its own, else the one its effect
    implies (exclude -> error, review/precaution -> warning, note -> info), else the rule's.

    Args:
        rule: The rule overridden.
        severity: The override's severity, if any.
        effect: The override's effect, if any.

    Raises:
        ValueError: Naming the rule (the message says "cannot go below").
    """
    if not rule.floor:
        return
    resulting = severity if severity is not None else (
        EFFECT_SEVERITY[effect] if effect is not None else rule.severity)
    if severity_rank(resulting) < severity_rank(rule.severity):
        msg = (f"rule {rule.id!r} is a safety floor: its severity cannot go below "
               f"{rule.severity.value!r} (the override gives {resulting.value!r})")
        raise ValueError(msg)
    if rule.effect is not None and effect is not None and (
        effect_rank(effect) < effect_rank(rule.effect)
    ):
        msg = (f"rule {rule.id!r} is a safety floor: its effect cannot go below "
               f"{rule.effect.value!r} (got {effect.value!r})")
        raise ValueError(msg)


def _too_deep(value: Any, budget: int) -> bool:
    """Whether decoded JSON nests objects and arrays deeper than ``budget`` levels."""
    if isinstance(value, dict):
        children: Any = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return False
    if budget <= 0:
        return True
    return any(_too_deep(child, budget - 1) for child in children)


def decode_policy_json(raw: bytes | str) -> Any:
    """Decode a policy file's text, bounded in size and nesting.

    Args:
        raw: The file's content (read at most :data:`MAX_POLICY_BYTES` + 1 bytes of it).

    Raises:
        ValueError: For a file that is too large, too deeply nested or not JSON.
    """
    if len(raw) > MAX_POLICY_BYTES:
        msg = f"larger than {MAX_POLICY_BYTES} bytes: a policy file holds at most that"
        raise ValueError(msg)
    try:
        data = json.loads(raw)
    except RecursionError:
        data = None
        deep = True
    except ValueError as exc:  # includes UnicodeDecodeError
        msg = f"not valid JSON ({exc})"
        raise ValueError(msg) from None
    else:
        deep = _too_deep(data, MAX_POLICY_DEPTH)
    if deep:
        msg = f"a policy file nests objects and arrays at most {MAX_POLICY_DEPTH} deep"
        raise ValueError(msg)
    return data
