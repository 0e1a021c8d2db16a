"""Thresholds of ``dryneedle validate``: ``--fail-on`` and ``--max-invalid-rate``.

A record *fails* when it has a finding of the ``--fail-on`` severity or worse (``error``, the
default: the record is invalid; ``warning``: an error or a warning). The run fails (exit 1)
when any record fails, or, with ``--max-invalid-rate R``, when the share of failing records is
above ``R`` (peer: Great Expectations' ``mostly``).

May import: the standard library, :mod:`dryneedle.findings`.
"""

from __future__ import annotations

from typing import Any, Final

import attrs

__all__ = ["FAIL_ON", "Threshold", "exit_status"]

FAIL_ON: Final = ("error", "warning")
"""The choices of ``--fail-on``."""

_WORSE: Final = {"error": frozenset({"error"}), "warning": frozenset({"error", "warning"})}


def _check_rate(_instance: Any, _attribute: Any, value: float | None) -> None:
    if value is not None and not 0.0 <= value <= 1.0:
        msg = f"the invalid rate must be between 0 and 1, got {value}"
        raise ValueError(msg)


@attrs.frozen(kw_only=True)
class Threshold:
    """When a validation run fails.

    Attributes:
        fail_on: ``error`` or ``warning``: the least severity that makes a record fail.
        max_invalid_rate: The largest share of failing records that still passes
            (``None``: any failing record fails the run).

    >>> from dryneedle.outputs import Threshold
    >>> t = Threshold(fail_on="warning")
    >>> t.fails({"findings": [{"severity": "warning"}]}), t.fails({"findings": []})
    (True, False)
    """

    fail_on: str = attrs.field(default="error", validator=attrs.validators.in_(FAIL_ON))
    max_invalid_rate: float | None = attrs.field(default=None, validator=_check_rate)

    @property
    def reads_findings(self) -> bool:
        """Whether failing records must be counted from the findings (not the ``valid`` flag)."""
        return self.fail_on != "error"

    @property
    def is_default(self) -> bool:
        """Whether this is the default (exit 1 on any error)."""
        return self.fail_on == "error" and self.max_invalid_rate is None

    def fails(self, report: dict[str, Any]) -> bool:
        """Whether one report (JSON shape) fails."""
        worse = _WORSE[self.fail_on]
        return any(f["severity"] in worse for f in report["findings"])


def exit_status(threshold: Threshold, records: int, failing: int) -> tuple[int, str | None]:
    r"""The exit code of a run and, unless the threshold is the default, a summary line.

    Args:
        threshold: The threshold.
        records: Records validated.
        failing: Records that fail under it.

    Returns:
        ``(0 or 1, line)``; the line says the failing share and the allowed one.

    >>> from dryneedle.outputs import Threshold, exit_status
    >>> exit_status(Threshold(max_invalid_rate=0.1), 300, 24)
    (0, 'invalid rate: 8.00 % (24 of 300 records with an error), allowed 10.00 %: pass\n')
    >>> exit_status(Threshold(), 300, 24)
    (1, None)
    """
    rate = failing / records if records else 0.0
    allowed = 0.0 if threshold.max_invalid_rate is None else threshold.max_invalid_rate
    failed = failing > 0 if threshold.max_invalid_rate is None else rate > allowed
    code = 1 if failed else 0
    if threshold.is_default:
        return code, None
    what = "an error" if threshold.fail_on == "error" else "an error or a warning"
    line = (f"invalid rate: {rate * 100:.2f} % ({failing} of {records} records with {what}), "
            f"allowed {allowed * 100:.2f} %: {'FAIL' if failed else 'pass'}\n")
    return code, line
