"""The ``dryneedle`` command line (also ``python -m dryneedle``).

The CLI is the only place that prints or exits. Exit codes are part of the interface:

* ``0`` -- no errors found;
* ``1`` -- errors found (at least one record, patient or session is invalid / excluded);
* ``2`` -- usage error or unreadable input;
* ``141`` -- standard output was closed early (``| head``): the command stops quietly, as
  ``cat`` and ``grep`` do (128 + SIGPIPE).

Every sub-command reads its inputs through one input layer
(:func:`dryneedle.records.read_items`):
:func:`add_input_options` adds its options and :func:`read_inputs` reads with them.

Sub-commands: ``validate``, ``screen``, ``rules``, ``schema``, ``aftercare``, ``triage``,
``rates``, ``report`` (a static HTML page), ``fhir`` (``screen``, ``procedure``), ``serve``
(the CDS Hooks service) and ``audit``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from typing import Any, Final, TextIO

from dryneedle._version import __version__

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_ERRORS",
    "EXIT_OK",
    "EXIT_USAGE",
    "Document",
    "add_input_options",
    "build_parser",
    "main",
    "read_inputs",
]

EXIT_OK = 0
"""Exit code: no errors found."""
EXIT_ERRORS = 1
"""Exit code: errors found."""
EXIT_USAGE = 2
"""Exit code: usage error or unreadable input."""
EXIT_BROKEN_PIPE = 141
"""Exit code: standard output was closed before the command was done (128 + SIGPIPE)."""


class UsageError(Exception):
    """A problem with the command line or its inputs (exit code 2)."""


def _iso_date(text: str) -> date:
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        msg = f"not an ISO date (YYYY-MM-DD): {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def add_policy_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--policy NAME|FILE`` to a sub-command parser."""
    parser.add_argument(
        "--policy",
        default="default",
        metavar="NAME|FILE",
        help="built-in policy (default, guideline) or a JSON policy file (default: %(default)s)",
    )


def resolve_policy(value: str) -> Any:
    """Return the policy named, or loaded from a JSON file (raises :class:`UsageError`).

    A policy file is read bounded (at most :data:`dryneedle.policy.MAX_POLICY_BYTES` + 1
    bytes, nesting checked, a UTF-8 BOM removed), and a refused value (out of range, wrong
    type, weakening a floor) is a usage error naming the limit or rule.
    """
    from dryneedle.policy import MAX_POLICY_BYTES, POLICIES, loads_policy  # noqa: PLC0415

    if value in POLICIES:
        return POLICIES[value]
    try:
        with open(value, "rb") as f:
            raw = f.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        names = ", ".join(POLICIES)
        msg = f"--policy: {value}: not a built-in policy ({names}) nor a readable file"
        raise UsageError(msg) from exc
    try:
        return loads_policy(raw.removeprefix(b"\xef\xbb\xbf"))
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        msg = f"--policy: {value}: invalid policy file: {exc}"
        raise UsageError(msg) from exc


# --- input ---------------------------------------------------------------------------------------


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        msg = f"expected a positive number of bytes, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def add_input_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--input-format`` and ``--max-record-bytes`` (the input layer's options)."""
    from dryneedle.records import DEFAULT_MAX_RECORD_BYTES, FORMATS  # noqa: PLC0415

    parser.add_argument(
        "--input-format", choices=FORMATS, default=None,
        help="jsonl: one record per line; json: a JSON array of records or one JSON "
        "document (default: json for names ending .json, also compressed as .json.gz, "
        ".json.bz2, .json.xz, .json.zst; jsonl otherwise and for stdin)")
    parser.add_argument(
        "--max-record-bytes", type=_positive, default=DEFAULT_MAX_RECORD_BYTES, metavar="N",
        help="a larger record (line or array element) is reported, not read "
        "(default: %(default)s = 16 MiB)")


class Document:
    """One input record, parsed: its source, line and value, or why it could not be read.

    Attributes:
        source: The input's name.
        line: The line where the record starts.
        value: The decoded JSON value (when ``error`` is ``None``).
        error: ``(code, message)`` when the record could not be read or parsed.
    """

    __slots__ = ("error", "line", "raw", "source", "value")

    def __init__(self, source: str, line: int, value: Any,
                 error: tuple[str, str] | None, raw: bytes | None = None) -> None:
        self.source = source
        self.line = line
        self.value = value
        self.error = error
        self.raw = raw

    def repeats_a_key(self) -> bool:
        """Whether an object of the document gives the same key twice (SPEC §6 1.1)."""
        from dryneedle.records import repeats_a_key  # noqa: PLC0415

        if self.raw is None or self.error is not None:
            return False
        repeated: bool = repeats_a_key(self.raw, self.value)
        return repeated

    @property
    def where(self) -> str:
        """``source:line``, safe to print."""
        from dryneedle.records import escape_text  # noqa: PLC0415

        return escape_text(f"{self.source}:{self.line}")


def read_inputs(args: argparse.Namespace, names: Sequence[str]) -> Iterator[Document]:
    """Expand and read inputs with the options of :func:`add_input_options`, parsed.

    A name that matches nothing, or an input that cannot be opened or read, raises the
    command line's usage error (exit code 2), after the documents read before it.
    """
    from dryneedle import records  # noqa: PLC0415
    from dryneedle.records import JSONError  # noqa: PLC0415
    from dryneedle.records import loads as parse  # noqa: PLC0415

    try:
        expanded = records.expand_inputs(names)
        for item in records.read_items(expanded, getattr(args, "input_format", None),
                                      getattr(args, "max_record_bytes",
                                              records.DEFAULT_MAX_RECORD_BYTES)):
            if isinstance(item.data, records.BadInput):
                yield Document(item.source, item.line, None,
                               (item.data.code, item.data.message))
                continue
            try:
                value = parse(item.data)
            except JSONError as exc:
                yield Document(item.source, item.line, None,
                               ("structure.json", f"not valid JSON: {exc}"))
                continue
            yield Document(item.source, item.line, value, None, raw=item.data)
    except (OSError, EOFError) as exc:
        msg = f"unreadable input: {exc}"
        raise UsageError(msg) from exc


def write_json(out: TextIO, data: Any) -> None:
    """Write pretty, deterministic JSON followed by a newline."""
    out.write(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False))
    out.write("\n")


# --- rules / schema ----------------------------------------------------------------------------


def _cmd_rules(args: argparse.Namespace) -> int:
    from dryneedle.findings import all_rules  # noqa: PLC0415

    rules = [r for r in all_rules() if args.category is None or r.category == args.category]
    policy = resolve_policy(args.policy)
    if args.format == "json":
        write_json(
            sys.stdout,
            [
                {
                    "id": r.id,
                    "title": r.title,
                    "category": r.category,
                    "severity": policy.severity_of(r.id, r.severity).value,
                    "default_severity": r.severity.value,
                    "effect": None if r.effect is None else policy.effect_of(r.id, r.effect).value,
                    "limits": {name: getattr(policy, name) for name in r.limits},
                    "sources": list(r.sources),
                    "basis": _basis(r),
                    "floor": r.floor,
                    "rationale": r.rationale,
                }
                for r in rules
            ],
        )
        return EXIT_OK
    width = max((len(r.id) for r in rules), default=10)
    for r in rules:
        sev = policy.severity_of(r.id, r.severity).value
        tail = " (clinic policy default)" if r.clinic_policy_default else ""
        sys.stdout.write(
            f"{r.id:<{width}}  {sev:<7}  {r.title}  [{', '.join(r.sources)}]{tail}\n")
    return EXIT_OK


def _basis(rule: Any) -> str:
    """The ``basis`` of a rule in ``rules --format json``: what its sources amount to."""
    if not rule.sources:
        return "format rule (record format contract)"
    if rule.clinic_policy_default:
        return "clinic policy default"
    return "cited sources"


def _cmd_schema(args: argparse.Namespace) -> int:
    from dryneedle.records import json_schema  # noqa: PLC0415

    write_json(sys.stdout, json_schema())
    return EXIT_OK


# --- parser ------------------------------------------------------------------------------------

Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

# The sub-command modules, in the order of ``--help``, with the commands each registers and
# their one-line help. main() imports only the module of the command it runs (start-up time:
# validating imports neither aftercare nor FHIR); every other command gets a placeholder with
# the same help, so ``dryneedle --help`` and usage errors read the same (tests/test_cli.py
# compares this table with the modules).
_MODULES: Final[tuple[tuple[str, tuple[tuple[str, str], ...]], ...]] = (
    ("_validate", (("validate", "validate session records (JSONL or JSON array; '-' for "
                                "stdin)"),)),
    ("_screen", (("screen", "screen a patient (or each record's patient) and explain the "
                            "decision"),)),
    ("_aftercare", (("aftercare", "print a patient's aftercare plan for a session"),
                    ("triage", "triage a symptom report: expected, contact_clinic or urgent"),
                    ("rates", "adverse-event rates of session records beside the published "
                              "rates"))),
    ("_fhir", (("serve", "run the reference CDS Hooks service (extra 'service')"),
               ("audit", "query the CDS service's audit log (cards issued, feedback)"),
               ("fhir", "FHIR R4: screen a bundle, write a session as a Procedure"))),
    ("_report", (("report", "write one static HTML page (plots, counts, metadata) about a "
                            "validation run"),)),
)


def _registrar(module: str) -> Registrar:
    registrar: Registrar = importlib.import_module(f"dryneedle.cli.{module}").register
    return registrar


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Return the argument parser of the ``dryneedle`` command (used by the docs, too).

    Args:
        command: Register only this sub-command's module in full, the others as placeholders
            that show the same ``--help`` (a name of no sub-command: placeholders only, enough
            for the top-level help and usage errors); by default every sub-command, in full.
    """
    parser = argparse.ArgumentParser(
        prog="dryneedle",
        description="Cited clinical rules for dry needling: screen patients, validate session "
        "records, plan aftercare, talk FHIR.",
        epilog="Exit codes: 0 no errors, 1 errors found, 2 usage error or unreadable input.",
    )
    parser.add_argument("--version", action="version", version=f"dryneedle {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module, commands in _MODULES:
        if command is None or any(name == command for name, _ in commands):
            _registrar(module)(sub)
        else:
            for name, text in commands:
                sub.add_parser(name, help=text)
    p = sub.add_parser("rules", help="list the rule catalog with severities and sources",
                       description="List every registered rule with its severity under a "
                       "policy, its sources and (JSON) its rationale and limits.")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--category", help="only rules of this category (e.g. screening)")
    add_policy_option(p)
    p.set_defaults(func=_cmd_rules)
    p = sub.add_parser("schema", help="print the JSON Schema of record format v1",
                       description="Print the JSON Schema (draft 2020-12) of record format "
                       "v1, generated from the models.")
    p.set_defaults(func=_cmd_schema)
    return parser


def _command_of(argv: Sequence[str]) -> str:
    """The sub-command ``argv`` runs: its first argument that is not an option.

    The top-level options (``--help``, ``--version``) take no value, so that argument is the
    command; when there is none, or it names no sub-command, the parse ends at the top level
    (help, version or a usage error), where placeholders read as the real sub-commands.
    """
    for arg in argv:
        if not arg.startswith("-"):
            return arg
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).
    """
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(_command_of(argv))  # only the module of the command run
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    try:
        code: int = args.func(args)
        sys.stdout.flush()  # inside the guard: a closed pipe shows up here, not at exit
    except UsageError as exc:
        sys.stderr.write(f"dryneedle: error: {exc}\n")
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. `dryneedle validate x | head`: stop quietly, like cat
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    return code


def _silence_stdout() -> None:
    """Point stdout at devnull so the interpreter's final flush cannot fail again.

    The recipe of the Python documentation (``signal`` module, "Note on SIGPIPE").
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # pragma: no cover - stdout is not a file descriptor
        pass
