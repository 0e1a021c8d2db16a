"""Report formats CI systems read: JUnit XML, SARIF 2.1.0 and GitHub workflow annotations.

Each writer takes the reports of ``dryneedle validate`` one by one, in the JSON shape of the
report line contract (SPEC §7: ``index``, ``line``, ``record_id``, ``valid``, ``decision``,
``findings``), and streams them to a binary output; :meth:`close` finishes the document.

* :class:`JUnitWriter` -- one ``<testcase>`` per record (JUnit XML as Jenkins, GitLab and
  GitHub test reporters read it); a record's error findings are its ``<failure>``, its
  warnings and notes its ``<system-out>``.
* :class:`SarifWriter` -- one SARIF 2.1.0 log (sarif-2.1.0): ``ruleId`` is the finding code,
  ``tool.driver.rules`` is the rule catalog with each rule's sources as its help, each result
  located at its line (``region.startLine``) and its record path (a logical location).
* :class:`GitHubWriter` -- ``::error file=…,line=…,title=CODE::message`` workflow commands,
  escaped as the GitHub Actions toolkit escapes them.

May import: the standard library, :mod:`dryneedle.findings`, :mod:`dryneedle.sources`,
:mod:`dryneedle.policy`, ``dryneedle._version``.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from typing import Any, BinaryIO, Final, Protocol
from urllib.parse import quote
from xml.sax.saxutils import escape, quoteattr

from dryneedle._version import __version__
from dryneedle.findings import Rule, Severity, all_rules
from dryneedle.policy import Policy
from dryneedle.sources import SOURCES

__all__ = [
    "SARIF_SCHEMA",
    "GitHubWriter",
    "JUnitWriter",
    "ReportWriter",
    "SarifWriter",
    "github_escape_data",
    "github_escape_property",
    "sarif_rule",
]

SARIF_SCHEMA: Final = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
"""The ``$schema`` of the SARIF logs written (OASIS SARIF 2.1.0, errata 01)."""

_INFORMATION_URI: Final = "https://dryneedle.readthedocs.io/"
_SARIF_LEVEL: Final = {"error": "error", "warning": "warning", "info": "note"}
_GITHUB_COMMAND: Final = {"error": "error", "warning": "warning", "info": "notice"}
# Characters XML 1.0 cannot hold (and lone surrogates, which UTF-8 cannot encode).
_NOT_XML: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class ReportWriter(Protocol):
    """What every report writer does."""

    def write(self, report: dict[str, Any], source: str) -> None:
        """Write one report (JSON shape) read from input ``source``."""

    def close(self) -> None:
        """Finish the document (the output itself stays open)."""


def _where(report: dict[str, Any]) -> str:
    return f"record {report['record_id']}" if report["record_id"] else f"line {report['line']}"


# --- JUnit -----------------------------------------------------------------------------------


def _xml_text(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class JUnitWriter:
    """JUnit XML: one ``<testsuite>`` per input, one ``<testcase>`` per record.

    A record with error findings has one ``<failure>`` (its ``type`` the first error's code,
    its text every error); warnings and notes go to the test case's ``<system-out>``. Test
    cases are spooled (to disk past 8 MiB) so the suite counts can lead the document.

    >>> import io
    >>> from dryneedle.outputs import JUnitWriter
    >>> out = io.BytesIO()
    >>> w = JUnitWriter(out)
    >>> w.write({"index": 0, "line": 1, "record_id": "r-1", "valid": True, "decision": None,
    ...          "findings": []}, "x.jsonl")
    >>> w.close()
    >>> b'<testcase classname="x.jsonl" name="line 1: record r-1"' in out.getvalue()
    True
    """

    def __init__(self, out: BinaryIO, *, name: str = "dryneedle validate") -> None:
        self._out = out
        self._name = name
        self._spool = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115
        self._suite: str | None = None
        self._suite_body = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115
        self._counts = [0, 0]  # tests, failures in the current suite
        self._tests = 0
        self._failures = 0

    def _flush_suite(self) -> None:
        if self._suite is None:
            return
        tests, failures = self._counts
        head = (f"  <testsuite name={quoteattr(_xml_text(self._suite))} tests=\"{tests}\" "
                f"failures=\"{failures}\" errors=\"0\" skipped=\"0\">\n")
        self._spool.write(head.encode("utf-8"))
        self._suite_body.seek(0)
        shutil.copyfileobj(self._suite_body, self._spool)
        self._spool.write(b"  </testsuite>\n")
        self._suite_body.seek(0)
        self._suite_body.truncate()
        self._counts = [0, 0]

    def write(self, report: dict[str, Any], source: str) -> None:
        """Write one report as a test case."""
        if source != self._suite:
            self._flush_suite()
            self._suite = source
        name = f"line {report['line']}: {_where(report)}"
        if report["decision"]:
            name += f" ({report['decision']})"
        errors = [f for f in report["findings"] if f["severity"] == "error"]
        others = [f for f in report["findings"] if f["severity"] != "error"]
        parts = [f"    <testcase classname={quoteattr(_xml_text(source))} "
                 f"name={quoteattr(_xml_text(name))}"]
        if not errors and not others:
            parts.append("/>\n")
        else:
            parts.append(">\n")
            if errors:
                first = errors[0]
                message = f"{len(errors)} error(s): {first['code']} at " \
                          f"{first['path'] or '<record>'}: {first['message']}"
                body = "\n".join(_finding_line(f) for f in errors)
                parts.append(f"      <failure message={quoteattr(_xml_text(message))} "
                             f"type={quoteattr(_xml_text(first['code']))}>"
                             f"{escape(_xml_text(body))}</failure>\n")
            if others:
                body = "\n".join(_finding_line(f) for f in others)
                parts.append(f"      <system-out>{escape(_xml_text(body))}</system-out>\n")
            parts.append("    </testcase>\n")
        self._suite_body.write("".join(parts).encode("utf-8"))
        self._counts[0] += 1
        self._tests += 1
        if errors:
            self._counts[1] += 1
            self._failures += 1

    def close(self) -> None:
        """Write the document: the suites under one ``<testsuites>``."""
        self._flush_suite()
        self._out.write(b'<?xml version="1.0" encoding="UTF-8"?>\n')
        self._out.write(
            f"<testsuites name={quoteattr(self._name)} tests=\"{self._tests}\" "
            f"failures=\"{self._failures}\" errors=\"0\">\n".encode())
        self._spool.seek(0)
        shutil.copyfileobj(self._spool, self._out)
        self._out.write(b"</testsuites>\n")
        self._spool.close()
        self._suite_body.close()


def _finding_line(f: dict[str, Any]) -> str:
    text = f"[{f['severity']}] {f['code']} at {f['path'] or '<record>'}: {f['message']}"
    if f["sources"]:
        text += f" ({', '.join(f['sources'])})"
    return text


# --- SARIF -----------------------------------------------------------------------------------


def sarif_rule(rule: Rule, policy: Policy | None = None) -> dict[str, Any]:
    """One rule of the catalog as a SARIF ``reportingDescriptor``.

    Its sources are its help: the text lists each source's reference, ``helpUri`` is the first
    source that has a link.

    Args:
        rule: A registered rule.
        policy: The policy whose severity is the default level (default: the rule's own).
    """
    severity = rule.severity if policy is None else policy.severity_of(rule.id, rule.severity)
    sources = [SOURCES[s] for s in rule.sources if s in SOURCES]
    help_lines = [f"{s.id}: {s.reference}" + (f" <{s.url}>" if s.url else "") for s in sources]
    descriptor: dict[str, Any] = {
        "id": rule.id,
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.rationale or rule.title},
        "defaultConfiguration": {"level": _SARIF_LEVEL[Severity(severity).value]},
        "help": {"text": "Sources:\n" + "\n".join(help_lines) if help_lines
                 else "No source cited."},
        "properties": {"category": rule.category, "sources": list(rule.sources)},
    }
    url = next((s.url for s in sources if s.url), None)
    if url:
        descriptor["helpUri"] = url
    return descriptor


def _logical_kind(path: str) -> str:
    if not path:
        return "object"
    return "value" if path.endswith("]") else "property"


class SarifWriter:
    """One SARIF 2.1.0 log with one run; results stream as reports come.

    ``tool.driver.rules`` is the whole rule catalog (:func:`~dryneedle.findings.all_rules`),
    so ``ruleIndex`` points into it. Each result has the finding's ``level`` (``info`` is
    ``note``), its line as ``region.startLine`` of the input file, and its record path as a
    logical location; ``properties`` keep ``index``, ``record_id``, ``path`` and ``sources``.

    Args:
        out: Binary output.
        policy: The policy of the run (rule levels and the fingerprint in the run's
            properties).
    """

    def __init__(self, out: BinaryIO, policy: Policy | None = None) -> None:
        self._out = out
        rules = all_rules()
        self._index = {r.id: n for n, r in enumerate(rules)}
        driver = {
            "name": "dryneedle",
            "version": __version__,
            "semanticVersion": __version__,
            "informationUri": _INFORMATION_URI,
            "rules": [sarif_rule(r, policy) for r in rules],
        }
        properties: dict[str, Any] = {}
        if policy is not None:
            properties["policyFingerprint"] = policy.fingerprint
        run = {"tool": {"driver": driver}, "columnKind": "unicodeCodePoints",
               "properties": properties}
        head = json.dumps({"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]},
                          ensure_ascii=False)
        # Open the run's results array just before the run object closes.
        assert head.endswith("}]}")
        self._out.write((head[:-3] + ', "results": [').encode("utf-8"))
        self._first = True

    def write(self, report: dict[str, Any], source: str) -> None:
        """Write one result per finding of the report."""
        for f in report["findings"]:
            result: dict[str, Any] = {
                "ruleId": f["code"],
                "level": _SARIF_LEVEL.get(f["severity"], "note"),
                "message": {"text": f"{f['message']} ({_where(report)}, at "
                                    f"{f['path'] or '<record>'})"},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": quote(source.replace("\\", "/"))},
                        "region": {"startLine": report["line"]},
                    },
                    "logicalLocations": [{
                        "fullyQualifiedName": f["path"] or "<record>",
                        "kind": _logical_kind(f["path"]),
                    }],
                }],
                "properties": {"index": report["index"], "record_id": report["record_id"],
                               "path": f["path"], "sources": f["sources"]},
            }
            if f["code"] in self._index:
                result["ruleIndex"] = self._index[f["code"]]
            text = json.dumps(result, ensure_ascii=False)
            self._out.write(("\n" if self._first else ",\n").encode() + _utf8(text))
            self._first = False

    def close(self) -> None:
        """Close the results, the run and the log."""
        self._out.write(b"\n]}]}\n")


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", errors="backslashreplace")


# --- GitHub ----------------------------------------------------------------------------------


def github_escape_data(text: str) -> str:
    r"""Escape a workflow command's message as the GitHub Actions toolkit does.

    >>> from dryneedle.outputs import github_escape_data
    >>> github_escape_data("50% done\r\nnext")
    '50%25 done%0D%0Anext'
    """
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def github_escape_property(text: str) -> str:
    """Escape a workflow command's property value (also ``:`` and ``,``).

    >>> from dryneedle.outputs import github_escape_property
    >>> github_escape_property("a:b,c%")
    'a%3Ab%2Cc%25'
    """
    return github_escape_data(text).replace(":", "%3A").replace(",", "%2C")


class GitHubWriter:
    r"""GitHub workflow annotations: one ``::error``/``::warning``/``::notice`` per finding.

    >>> import io
    >>> from dryneedle.outputs import GitHubWriter
    >>> out = io.BytesIO()
    >>> GitHubWriter(out).write({"index": 0, "line": 3, "record_id": None, "valid": False,
    ...     "decision": None, "findings": [{"code": "structure.json", "severity": "error",
    ...     "path": "", "message": "not JSON", "sources": []}]}, "x.jsonl")
    >>> out.getvalue().decode()
    '::error file=x.jsonl,line=3,title=structure.json::<record>: not JSON (line 3)\n'
    """

    def __init__(self, out: BinaryIO) -> None:
        self._out = out

    def write(self, report: dict[str, Any], source: str) -> None:
        """Write one annotation per finding."""
        for f in report["findings"]:
            command = _GITHUB_COMMAND.get(f["severity"], "notice")
            props = (f"file={github_escape_property(source)},line={report['line']},"
                     f"title={github_escape_property(f['code'])}")
            message = f"{f['path'] or '<record>'}: {f['message']} ({_where(report)})"
            self._out.write(_utf8(f"::{command} {props}::{github_escape_data(message)}\n"))

    def close(self) -> None:
        """Nothing to finish."""
