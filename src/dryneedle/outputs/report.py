"""The numbers behind ``dryneedle report``: one pass over the reports, one over the records.

:class:`RunStats` counts what the HTML page (:mod:`dryneedle.outputs.html`) shows and what its
embedded JSON summary holds: decisions, finding codes and paths, needles per session and
depths by technique, adverse-event rates with their 95 % Wilson intervals beside the published
rates of brady-2014 and boyce-2020 (:data:`dryneedle.aftercare.PUBLISHED_RATES`), and the
run's metadata. Memory is bounded by the number of distinct codes, paths and depth bins, not by
the number of records.

May import: the standard library, :mod:`dryneedle.aftercare`, :mod:`dryneedle.model`,
:mod:`dryneedle.policy`, :mod:`dryneedle.outputs.stats`, ``dryneedle._version``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, Final

from dryneedle._version import __version__
from dryneedle.aftercare import AdverseEventRates, adverse_event_rates
from dryneedle.model import SessionRecord, Technique
from dryneedle.outputs.stats import wilson_interval
from dryneedle.policy import Policy

__all__ = ["RunStats", "general_path"]

_INDEX: Final = re.compile(r"\[\d+\]")


def general_path(path: str) -> str:
    """A finding path with its list indices dropped, to count findings by field.

    >>> from dryneedle.outputs import general_path
    >>> general_path("session.insertions[3].needle.length_mm"), general_path("")
    ('session.insertions[].needle.length_mm', '<record>')
    """
    return _INDEX.sub("[]", path) if path else "<record>"


class _Technique:
    def __init__(self) -> None:
        self.insertions = 0
        self.sessions = 0
        self.per_session: Counter[int] = Counter()
        self.depths = 0
        self.depth_sum = 0.0
        self.depth_min = math.inf
        self.depth_max = -math.inf
        self.depth_bins: Counter[int] = Counter()

    def as_dict(self) -> dict[str, Any]:
        depth: dict[str, Any] = {"recorded": self.depths}
        if self.depths:
            depth.update(min=self.depth_min, max=self.depth_max,
                         mean=round(self.depth_sum / self.depths, 2),
                         histogram_1mm={str(k): v for k, v in sorted(self.depth_bins.items())})
        return {
            "insertions": self.insertions,
            "sessions": self.sessions,
            "needles_per_session": {str(k): v for k, v in sorted(self.per_session.items())},
            "depth_mm": depth,
        }


class RunStats:
    """Counts over one ``dryneedle report`` run.

    Feed it every report (:meth:`add_report`) and the structurally valid records
    (:meth:`records_pass`, which also counts the adverse-event rates); then
    :meth:`summary` gives the JSON summary the page embeds.
    """

    def __init__(self) -> None:
        self.records = 0
        self.valid = 0
        self.decisions: Counter[str] = Counter()
        self.codes: Counter[str] = Counter()
        self.code_severity: dict[str, Counter[str]] = {}
        self.severities: Counter[str] = Counter()
        self.paths: Counter[str] = Counter()
        self.inputs: Counter[str] = Counter()
        self.techniques = {t.value: _Technique() for t in Technique}
        self.rates: AdverseEventRates | None = None
        self.left_out = 0

    def add_report(self, report: dict[str, Any], source: str) -> None:
        """Count one report (JSON shape of the report line contract) of input ``source``."""
        self.records += 1
        self.inputs[source] += 1
        if report["valid"]:
            self.valid += 1
        self.decisions[report["decision"] or "none"] += 1
        for f in report["findings"]:
            self.codes[f["code"]] += 1
            self.code_severity.setdefault(f["code"], Counter())[f["severity"]] += 1
            self.severities[f["severity"]] += 1
            self.paths[general_path(f["path"])] += 1

    def _tally(self, records: Iterable[SessionRecord]) -> Iterator[SessionRecord]:
        for record in records:
            per: Counter[str] = Counter()
            for insertion in record.session.insertions:
                technique = self.techniques[Technique(insertion.technique).value]
                technique.insertions += 1
                per[Technique(insertion.technique).value] += 1
                depth = insertion.depth_mm
                if depth is not None and math.isfinite(depth):
                    technique.depths += 1
                    technique.depth_sum += depth
                    technique.depth_min = min(technique.depth_min, depth)
                    technique.depth_max = max(technique.depth_max, depth)
                    technique.depth_bins[math.floor(depth)] += 1
            for name, count in per.items():
                self.techniques[name].sessions += 1
                self.techniques[name].per_session[count] += 1
            yield record

    def records_pass(self, records: Iterable[SessionRecord], left_out: int = 0) -> None:
        """Count needles, depths and adverse events over the structurally valid records.

        Args:
            records: The records (read once).
            left_out: Records left out for structural errors (shown on the page).
        """
        self.rates = adverse_event_rates(self._tally(records))
        self.left_out = left_out

    def _adverse_events(self) -> dict[str, Any]:
        rates = self.rates if self.rates is not None else adverse_event_rates(())
        sessions = rates.sessions

        def entry(events: int, rate: float | None, published: Iterable[Any]) -> dict[str, Any]:
            ci = wilson_interval(events, sessions)
            return {
                "events": events,
                "rate": rate,
                "ci95_low": None if ci is None else ci[0],
                "ci95_high": None if ci is None else ci[1],
                "published": {p.source: {"percent": p.percent, "bound": p.bound,
                                         "display": p.display(), "denominator": p.denominator,
                                         "unit": p.unit} for p in published},
            }

        return {
            "sessions": sessions,
            "events": rates.events,
            "records_left_out": self.left_out,
            "ci_method": "wilson",
            "kinds": {k.kind.value: entry(k.events, k.rate, k.published) for k in rates.kinds},
            "grades": {
                "mild": entry(rates.mild.events, rates.mild.rate, rates.mild.published),
                "significant": entry(rates.significant.events, rates.significant.rate,
                                     rates.significant.published),
            },
        }

    def summary(self, *, policy: Policy, policy_name: str) -> dict[str, Any]:
        """The JSON summary of the run (deterministic: no dates, sorted counts).

        Args:
            policy: The policy of the run.
            policy_name: How it was named on the command line.
        """
        return {
            "tool": {"name": "dryneedle", "version": __version__},
            "policy": {"name": policy_name, "fingerprint": policy.fingerprint},
            "inputs": [{"name": n, "records": c} for n, c in self.inputs.items()],
            "validation": {
                "records": self.records,
                "valid": self.valid,
                "invalid": self.records - self.valid,
                "findings": sum(self.codes.values()),
                "findings_by_severity": dict(sorted(self.severities.items())),
                "decisions": dict(sorted(self.decisions.items())),
            },
            "findings_by_code": {
                code: {"count": n,
                       "severity": self.code_severity[code].most_common(1)[0][0]}
                for code, n in sorted(self.codes.items(), key=lambda kv: (-kv[1], kv[0]))
            },
            "findings_by_path": dict(sorted(self.paths.items(), key=lambda kv: (-kv[1], kv[0]))),
            "techniques": {name: t.as_dict() for name, t in self.techniques.items()},
            "adverse_events": self._adverse_events(),
        }
