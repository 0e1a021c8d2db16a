"""Outputs that plug into data pipelines and CI: splits, failure cases, CI formats, a report.

What ``dryneedle validate`` and ``dryneedle report`` write besides the JSON report lines:

* :class:`InputSplitter` -- the valid and invalid records, copied from the input in order
  (``--valid-out`` / ``--invalid-out``, a dead-letter queue);
* :class:`FailureCasesWriter` -- one row per finding, CSV or Parquet (``--failure-cases``);
* :class:`JUnitWriter`, :class:`SarifWriter`, :class:`GitHubWriter` -- ``--format junit``,
  ``sarif`` and ``github``;
* :func:`exit_status` -- the thresholds ``--fail-on`` and ``--max-invalid-rate``;
* :class:`RunStats` and :func:`render_html` -- the static HTML page of ``dryneedle report``;
* :func:`wilson_interval` -- the 95 % intervals of observed rates (also ``dryneedle rates``).

Layer: above :mod:`dryneedle.records`, beside :mod:`dryneedle.fhir`. May import the public
names of :mod:`dryneedle.findings`, :mod:`dryneedle.sources`, :mod:`dryneedle.policy`,
:mod:`dryneedle.aftercare`, :mod:`dryneedle.model` and ``dryneedle._version``; optional
dependencies (pyarrow, matplotlib) are imported only when their output is asked for.

Each name is imported from its module on first use (PEP 562), so that ``dryneedle validate``
writing JSON lines loads only the thresholds, not the writers and the report (start-up time).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dryneedle.outputs.failures import (
        FAILURE_COLUMNS,
        FailureCasesWriter,
        ParquetUnavailableError,
    )
    from dryneedle.outputs.formats import (
        SARIF_SCHEMA,
        GitHubWriter,
        JUnitWriter,
        ReportWriter,
        SarifWriter,
        github_escape_data,
        github_escape_property,
        sarif_rule,
    )
    from dryneedle.outputs.html import ReportUnavailableError, render_html, require_report_extra
    from dryneedle.outputs.report import RunStats, general_path
    from dryneedle.outputs.split import InputSplitter, SplitError, compact_json
    from dryneedle.outputs.stats import (
        Z_95,
        rates_intervals_text,
        rates_with_intervals,
        wilson_interval,
    )
    from dryneedle.outputs.thresholds import FAIL_ON, Threshold, exit_status

__all__ = [
    "FAILURE_COLUMNS",
    "FAIL_ON",
    "SARIF_SCHEMA",
    "Z_95",
    "FailureCasesWriter",
    "GitHubWriter",
    "InputSplitter",
    "JUnitWriter",
    "ParquetUnavailableError",
    "ReportUnavailableError",
    "ReportWriter",
    "RunStats",
    "SarifWriter",
    "SplitError",
    "Threshold",
    "compact_json",
    "exit_status",
    "general_path",
    "github_escape_data",
    "github_escape_property",
    "rates_intervals_text",
    "rates_with_intervals",
    "render_html",
    "require_report_extra",
    "sarif_rule",
    "wilson_interval",
]

# name -> the module that defines it
_MODULES: dict[str, str] = {
    **dict.fromkeys(("FAILURE_COLUMNS", "FailureCasesWriter", "ParquetUnavailableError"),
                    "failures"),
    **dict.fromkeys(("SARIF_SCHEMA", "GitHubWriter", "JUnitWriter", "ReportWriter",
                     "SarifWriter", "github_escape_data", "github_escape_property",
                     "sarif_rule"), "formats"),
    **dict.fromkeys(("ReportUnavailableError", "render_html", "require_report_extra"), "html"),
    **dict.fromkeys(("RunStats", "general_path"), "report"),
    **dict.fromkeys(("InputSplitter", "SplitError", "compact_json"), "split"),
    **dict.fromkeys(("Z_95", "rates_intervals_text", "rates_with_intervals",
                     "wilson_interval"), "stats"),
    **dict.fromkeys(("FAIL_ON", "Threshold", "exit_status"), "thresholds"),
}


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use (then it is a module global)."""
    module = _MODULES.get(name)
    if module is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
