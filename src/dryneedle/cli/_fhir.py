"""``dryneedle fhir screen|procedure`` and ``dryneedle serve`` (FHIR R4 and CDS Hooks)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from dryneedle.cli import (
    EXIT_ERRORS,
    EXIT_OK,
    UsageError,
    _iso_date,
    add_input_options,
    add_policy_option,
    read_inputs,
    resolve_policy,
    write_json,
)
from dryneedle.cli._screen import _site
from dryneedle.findings import Decision
from dryneedle.records._json import escape_text

__all__ = ["register"]

_OUTPUTS = ("all", "cards", "result", "detected-issues", "operation-outcome")


def _read_values(args: argparse.Namespace, name: str, *, empty_ok: bool = False) -> list[Any]:
    """Every record of an input, through the one input layer (raises :class:`UsageError`)."""
    values = []
    for doc in read_inputs(args, [name]):
        if doc.error is not None:
            msg = f"{doc.where}: {escape_text(doc.error[1])}"
            raise UsageError(msg)
        values.append(doc.value)
    if not values and not empty_ok:
        msg = f"{escape_text(name)}: no JSON document found"
        raise UsageError(msg)
    return values


def _read_json(args: argparse.Namespace, name: str, *, empty_ok: bool = False) -> Any:
    """One document; several records (a JSON array, JSONL) are taken as a list of them."""
    values = _read_values(args, name, empty_ok=empty_ok)
    return values[0] if len(values) == 1 and isinstance(values[0], dict) else values


def _cmd_screen(args: argparse.Namespace) -> int:
    from dryneedle.fhir import FhirInputError, screen_fhir  # noqa: PLC0415

    policy = resolve_policy(args.policy)
    bundle = _read_json(args, args.file)  # a Bundle, or resources (a JSON array, JSONL)
    answers = _read_json(args, args.answers, empty_ok=True) if args.answers else None
    if answers is not None and not isinstance(answers, dict):
        msg = f"--answers {args.answers}: expected a JSON object of answers"
        raise UsageError(msg)
    # The command line is the boundary where today's date may be read; rules never read it.
    on = args.on or datetime.now(UTC).date()
    try:
        screening = screen_fhir(bundle, on=on, sites=args.site or (), policy=policy,
                                patient_id=args.patient_id, answers=answers)
    except FhirInputError as exc:
        msg = f"{args.file}: {exc}"
        raise UsageError(msg) from exc
    outputs: dict[str, Any] = {
        "result": screening.result.as_dict(),
        "provenance": [p.as_dict() for p in screening.inputs.provenance],
        "cards": {"cards": screening.cards(always=True)},
        "detected-issues": screening.detected_issues(),
        "operation-outcome": screening.operation_outcome(),
    }
    if args.output == "all":
        write_json(sys.stdout, {k.replace("-", "_"): v for k, v in outputs.items()})
    elif args.output == "result":
        write_json(sys.stdout, {"result": outputs["result"], "provenance": outputs["provenance"]})
    else:
        write_json(sys.stdout, outputs[args.output])
    blocked = screening.result.decision in (Decision.NOT_ELIGIBLE, Decision.NEEDS_REVIEW)
    return EXIT_ERRORS if blocked else EXIT_OK


def _procedure_or_outcome(data: Any, args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    from dryneedle.fhir import operation_outcome, procedure  # noqa: PLC0415
    from dryneedle.records import RecordError, structure_record  # noqa: PLC0415

    if not isinstance(data, dict):
        from dryneedle.findings import Finding, Severity  # noqa: PLC0415

        bad = Finding(code="structure.not_object", severity=Severity.ERROR, path="",
                      message="expected a JSON object (a session record)")
        return operation_outcome([bad]), False
    try:
        record = structure_record(data)
    except RecordError as exc:
        return operation_outcome(exc.findings), False
    return procedure(record.session, patient_id=record.patient.patient_id,
                     count_sides_separately=args.count_sides_separately), True


def _cmd_procedure(args: argparse.Namespace) -> int:
    values = _read_values(args, args.file)
    if len(values) == 1 and isinstance(values[0], list):  # one document holding a list
        values = values[0]
    data: Any = values[0] if len(values) == 1 else values
    if isinstance(data, list):
        results = [_procedure_or_outcome(item, args) for item in data]
        write_json(sys.stdout, {"resourceType": "Bundle", "type": "collection",
                                "entry": [{"resource": r} for r, _ in results]})
        return EXIT_OK if all(ok for _, ok in results) else EXIT_ERRORS
    resource, ok = _procedure_or_outcome(data, args)
    write_json(sys.stdout, resource)
    return EXIT_OK if ok else EXIT_ERRORS


def _cmd_serve(args: argparse.Namespace) -> int:  # pragma: no cover - blocks until stopped
    try:
        import uvicorn  # noqa: PLC0415 - optional extra

        from dryneedle.service import create_app  # noqa: PLC0415

        app = create_app(resolve_policy(args.policy), always=args.always_card,
                         cors_origins=tuple(args.cors_origin or ()))
    except ImportError as exc:
        msg = "the reference service needs the 'service' extra: pip install 'dryneedle[service]'"
        raise UsageError(msg) from exc
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        sys.stderr.write("dryneedle: warning: the reference service has no authentication; "
                         "expose it only behind a gateway that authenticates callers\n")
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``fhir`` (``screen``, ``procedure``) and ``serve`` sub-commands."""
    p = sub.add_parser(
        "serve",
        help="run the reference CDS Hooks service (extra 'service')",
        description="Run the reference CDS Hooks 2.0 service: discovery at /cds-services, "
        "screening at /cds-services/dryneedle-screening (patient-view) and "
        "/cds-services/dryneedle-screening-order-select (order-select). No authentication: "
        "localhost by default.",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface (default: %(default)s)")
    p.add_argument("--port", type=int, default=8080, help="port (default: %(default)s)")
    add_policy_option(p)
    p.add_argument("--always-card", action="store_true",
                   help="return an info card even when there is nothing to say")
    p.add_argument("--cors-origin", action="append", metavar="ORIGIN",
                   help="allow browser calls from this origin (repeatable)")
    p.set_defaults(func=_cmd_serve)

    f = sub.add_parser(
        "fhir",
        help="FHIR R4: screen a bundle, write a session as a Procedure",
        description="FHIR R4 in and out (plain JSON, no FHIR library needed).",
    )
    actions = f.add_subparsers(dest="fhir_command", metavar="ACTION", required=True)
    s = actions.add_parser(
        "screen",
        help="screen the patient of a FHIR Bundle; print cards, result and provenance",
        description="Map a FHIR R4 Bundle (or a JSON array of resources) to the screening "
        "inputs and screen them. Exit code 0 for eligible / eligible_with_precautions, 1 for "
        "needs_review / not_eligible, 2 for usage errors or an unusable bundle.",
    )
    s.add_argument("file", metavar="BUNDLE",
                   help="FHIR Bundle JSON, a JSON array or JSONL of resources, or '-'")
    add_input_options(s)
    add_policy_option(s)
    s.add_argument("--on", type=_iso_date, metavar="DATE",
                   help="evaluation date (default: today, UTC)")
    s.add_argument("--patient-id", help="the patient's FHIR id (default: found in the bundle)")
    s.add_argument("--answers", metavar="FILE",
                   help="JSON object of answers collected outside FHIR (e.g. intake form)")
    s.add_argument("--site", action="append", type=_site, metavar="MUSCLE:SIDE",
                   help="a planned site (repeatable)")
    s.add_argument("--output", choices=_OUTPUTS, default="all",
                   help="what to print (default: %(default)s)")
    s.set_defaults(func=_cmd_screen)

    r = actions.add_parser(
        "procedure",
        help="write a session record as a FHIR R4 Procedure",
        description="Write a session record (format v1; a JSON array gives a collection "
        "Bundle) as a FHIR R4 Procedure. An unreadable record gives an OperationOutcome and "
        "exit code 1.",
    )
    r.add_argument("file", metavar="RECORD",
                   help="session records (one JSON document, a JSON array or JSONL), or '-'")
    add_input_options(r)
    r.add_argument("--count-sides-separately", action="store_true",
                   help="count left and right of one muscle as two muscles for CPT")
    r.set_defaults(func=_cmd_procedure)
