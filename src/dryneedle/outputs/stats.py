"""Confidence intervals for observed rates, and the adverse-event rates with their intervals.

Used by ``dryneedle rates`` and ``dryneedle report``: one :func:`wilson_interval` for both, so
the command line and the HTML page give the same numbers.

May import: the standard library, :mod:`dryneedle.aftercare` (public names).
"""

from __future__ import annotations

import math
from typing import Any, Final

from dryneedle.aftercare import AdverseEventRates

__all__ = ["Z_95", "rates_intervals_text", "rates_with_intervals", "wilson_interval"]

Z_95: Final = 1.959963984540054
"""The standard normal quantile of 97.5 %: the *z* of a two-sided 95 % interval."""


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval of a binomial proportion (95 % by default).

    A statistical method, not a clinical source: E. B. Wilson, "Probable inference, the law of
    succession, and statistical inference", *Journal of the American Statistical Association*
    22 (1927) 209-212; recommended over the Wald interval for small counts and rates near 0 by
    L. D. Brown, T. T. Cai and A. DasGupta, "Interval estimation for a binomial proportion",
    *Statistical Science* 16 (2001) 101-133. Unlike the Wald interval it never leaves
    ``[0, 1]`` and is not empty when no event was seen.

    Args:
        successes: Trials with the event (``0 <= successes <= trials``).
        trials: Trials observed.
        z: The normal quantile (default: two-sided 95 %).

    Returns:
        ``(low, high)`` as fractions, or ``None`` when there are no trials or more events than
        trials (a count that is not a proportion has no binomial interval).

    >>> from dryneedle.outputs import wilson_interval
    >>> low, high = wilson_interval(1, 4)
    >>> round(low, 4), round(high, 4)
    (0.0456, 0.6994)
    >>> low, high = wilson_interval(0, 10)
    >>> low, round(high, 4)
    (0.0, 0.2775)
    >>> wilson_interval(0, 0) is None, wilson_interval(5, 4) is None
    (True, True)
    """
    if trials <= 0 or successes < 0 or successes > trials:
        return None
    p = successes / trials
    z2 = z * z
    denominator = 1 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def _ci(events: int, sessions: int) -> list[float] | None:
    interval = wilson_interval(events, sessions)
    return None if interval is None else [interval[0], interval[1]]


def rates_with_intervals(rates: AdverseEventRates) -> dict[str, Any]:
    """The rates as JSON-ready data, each observed rate with its 95 % Wilson interval.

    The data is :meth:`~dryneedle.aftercare.AdverseEventRates.as_dict` with a ``ci95`` key
    (``[low, high]`` as fractions, or ``None``) added to each kind and to both grades. Each
    session counts as one trial that has the event or not, as brady-2014 and boyce-2020 count
    events per treatment or session; with more events of a kind than sessions the interval is
    ``None``.

    Args:
        rates: Counts from :func:`~dryneedle.aftercare.adverse_event_rates`.
    """
    data = rates.as_dict()
    for kind, entry in zip(rates.kinds, data["kinds"], strict=True):
        entry["ci95"] = _ci(kind.events, rates.sessions)
    data["mild"]["ci95"] = _ci(rates.mild.events, rates.sessions)
    data["significant"]["ci95"] = _ci(rates.significant.events, rates.sessions)
    data["ci_method"] = "wilson"
    return data


def _pct(interval: tuple[float, float] | None) -> str:
    if interval is None:
        return "-"
    return f"{interval[0] * 100:.2f} % - {interval[1] * 100:.2f} %"


def rates_intervals_text(rates: AdverseEventRates) -> str:
    """A text table of the 95 % Wilson interval of each observed rate (per 100 sessions).

    Printed by ``dryneedle rates`` under the table of
    :meth:`~dryneedle.aftercare.AdverseEventRates.to_text`.

    Args:
        rates: Counts from :func:`~dryneedle.aftercare.adverse_event_rates`.
    """
    rows = [(k.kind.value, _pct(wilson_interval(k.events, rates.sessions))) for k in rates.kinds]
    rows += [
        ("all mild", _pct(wilson_interval(rates.mild.events, rates.sessions))),
        ("all significant", _pct(wilson_interval(rates.significant.events, rates.sessions))),
    ]
    width = max(len(name) for name, _ in rows)
    lines = ["95 % confidence intervals of the observed rates (Wilson score interval):"]
    lines += [f"  {name:<{width}}  {text}" for name, text in rows]
    return "\n".join(lines) + "\n"
