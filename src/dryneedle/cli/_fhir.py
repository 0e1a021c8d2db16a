"""``dryneedle fhir screen|procedure``, ``dryneedle serve`` and ``dryneedle audit``.

Layer: command line (the only layer that prints or exits). May import every layer below it,
through public names only: :mod:`dryneedle.fhir`, :mod:`dryneedle.service`,
:mod:`dryneedle.records`, :mod:`dryneedle.policy`, :mod:`dryneedle.findings`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
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
from dryneedle.records import escape_text

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


def _code_tables(names: list[str] | None) -> list[Any]:
    """Read every ``--codes FILE`` (a clinic's answer-code tables); a bad one is a usage error."""
    from dryneedle.fhir import read_code_table_file  # noqa: PLC0415

    codes = []
    for name in names or ():
        try:
            codes.append(read_code_table_file(name))
        except ValueError as exc:
            msg = f"--codes {name}: {exc}"
            raise UsageError(msg) from exc
    return codes


def _cmd_screen(args: argparse.Namespace) -> int:
    from dryneedle.fhir import FhirInputError, screen_fhir  # noqa: PLC0415

    policy = resolve_policy(args.policy)
    codes = _code_tables(args.codes)
    bundle = _read_json(args, args.file)  # a Bundle, or resources (a JSON array, JSONL)
    answers = _read_json(args, args.answers, empty_ok=True) if args.answers else None
    if answers is not None and not isinstance(answers, dict):
        msg = f"--answers {args.answers}: expected a JSON object of answers"
        raise UsageError(msg)
    # The command line is the boundary where today's date may be read; rules never read it.
    on = args.on or datetime.now(UTC).date()
    try:
        screening = screen_fhir(bundle, on=on, sites=args.site or (), policy=policy,
                                patient_id=args.patient_id, answers=answers, codes=codes)
    except FhirInputError as exc:
        msg = f"{args.file}: {exc}"
        raise UsageError(msg) from exc
    outputs: dict[str, Any] = {
        "result": screening.result.as_dict(),
        "origins": screening.inputs.origins(),
        "unclassified_medications": list(screening.inputs.unclassified_medications),
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


_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _serve_app(args: argparse.Namespace) -> Any:
    """Build the application from the ``serve`` options (raises :class:`UsageError`)."""
    return _serve_factory(args)()


def _serve_factory(args: argparse.Namespace) -> Callable[[], Any]:
    """Check the ``serve`` options; return what makes the application (once per process).

    Raises:
        UsageError: On an invalid option combination or an unusable file.
    """
    try:
        from dryneedle.service import (  # noqa: PLC0415
            AuditLog,
            FhirFetcher,
            JwtAuth,
            SqliteReplayCache,
            create_app,
        )
    except ImportError as exc:  # pragma: no cover - without the extra
        msg = "the reference service needs the 'service' extra: pip install 'dryneedle[service]'"
        raise UsageError(msg) from exc
    if args.processes < 1 or args.workers < 1 or args.cpu_slots < 1:
        msg = "--processes, --workers and --cpu-slots must be at least 1"
        raise UsageError(msg)
    if not 0 < args.switch_interval <= 1000:
        msg = "--switch-interval must be over 0 and at most 1000 ms"
        raise UsageError(msg)
    if args.processes > 1 and args.audit_db == ":memory:":
        msg = "--processes > 1 needs an --audit-db file the processes share"
        raise UsageError(msg)
    auth = None
    if args.insecure_no_auth:
        if args.host not in _LOOPBACK:
            msg = "--insecure-no-auth binds to loopback only (--host 127.0.0.1 or ::1)"
            raise UsageError(msg)
        if args.jwks or args.jku:
            msg = "--insecure-no-auth cannot be combined with --jwks / --jku"
            raise UsageError(msg)
    elif args.jwks or args.jku:
        if not args.issuer:
            msg = "JWT authentication needs at least one --issuer"
            raise UsageError(msg)
        # The jti replay cache is a SQLite file: shared by the processes, kept over restarts.
        replay_db = args.replay_db or f"{args.audit_db}.replay"
        try:
            replay = SqliteReplayCache(replay_db)
        except Exception as exc:
            msg = f"--replay-db {replay_db}: {exc}"
            raise UsageError(msg) from exc
        try:
            jwks = _read_json(args, args.jwks) if args.jwks else None
            auth = JwtAuth(issuers=args.issuer, jwks=jwks, jku_allowlist=args.jku or (),
                           replay=replay)
        except (ValueError, KeyError, TypeError) as exc:
            msg = f"--jwks: {exc}"
            raise UsageError(msg) from exc
    host = f"[{args.host}]" if ":" in args.host else args.host
    base_url = args.public_url or f"http://{host}:{args.port}"
    key = None
    if args.audit_key_file:
        try:
            with open(args.audit_key_file, "rb") as f:
                key = f.read().strip()
        except OSError as exc:
            msg = f"--audit-key-file: {exc}"
            raise UsageError(msg) from exc
    try:
        AuditLog(args.audit_db, hash_key=key).close()  # created and checked here, once
    except Exception as exc:
        msg = f"--audit-db {args.audit_db}: {exc}"
        raise UsageError(msg) from exc
    policy = resolve_policy(args.policy)
    codes = _code_tables(args.codes)

    def make() -> Any:
        return create_app(
            policy, always=args.always_card, cors_origins=tuple(args.cors_origin or ()),
            auth=auth, base_url=base_url, insecure_no_auth=args.insecure_no_auth,
            audit=AuditLog(args.audit_db, hash_key=key),
            fetcher=FhirFetcher(allowed_servers=args.fhir_server or ()),
            max_body=args.max_body, body_timeout=args.body_timeout, workers=args.workers,
            cpu_slots=args.cpu_slots,
            codes=codes, server_timing=args.server_timing,
        )

    return make


def _cmd_serve(args: argparse.Namespace) -> int:
    factory = _serve_factory(args)
    if not args.insecure_no_auth and not (args.jwks or args.jku):
        sys.stderr.write("dryneedle: warning: no CDS client keys (--jwks / --jku): every hook "
                         "and feedback call will be refused with 401\n")
    from dryneedle.service import serve  # noqa: PLC0415

    return serve(  # pragma: no cover - blocks until stopped
        factory, processes=args.processes, host=args.host, port=args.port, log_level="info",
        access_log=args.access_log, http=args.http, header_timeout=args.header_timeout,
        max_connections=args.max_connections, switch_interval=args.switch_interval / 1000)


def _cmd_audit(args: argparse.Namespace) -> int:
    import os  # noqa: PLC0415

    from dryneedle.service import AuditLog  # noqa: PLC0415

    if not os.path.exists(args.db):
        msg = f"--db {args.db}: no such audit database"
        raise UsageError(msg)
    log = AuditLog(args.db)
    try:
        if args.action == "stats":
            rows: Any = [log.stats()]
        elif args.action == "show":
            if not args.card:
                msg = "audit show needs a card uuid"
                raise UsageError(msg)
            rows = [{"table": t, **r} for t in ("cards", "feedback")
                    for r in log.rows(t, card=args.card)]
        else:
            rows = ({"table": args.table, **r} for r in log.rows(args.table))
        for row in rows:
            sys.stdout.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    finally:
        log.close()
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``fhir`` (``screen``, ``procedure``), ``serve`` and ``audit`` sub-commands."""
    p = sub.add_parser(
        "serve",
        help="run the reference CDS Hooks service (extra 'service')",
        description="Run the CDS Hooks 2.0 service: discovery at /cds-services, hooks "
        "patient-view, order-select, order-sign and appointment-book at "
        "/cds-services/{id}, feedback at /cds-services/{id}/feedback, OpenAPI at "
        "/openapi.json. Hook and feedback calls need a JWT signed by a trusted CDS client "
        "(--jwks / --jku, --issuer); without keys they are refused unless --insecure-no-auth "
        "(loopback only).",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface (default: %(default)s)")
    p.add_argument("--codes", action="append", metavar="FILE",
                   help="a clinic's answer-code table (the format of the shipped "
                   "fhir/data/answer-codes-*.json), merged on top (repeatable)")
    p.add_argument("--port", type=int, default=8080, help="port (default: %(default)s)")
    p.add_argument("--public-url", metavar="URL",
                   help="the service's public base URL, the JWT aud (default: http://HOST:PORT)")
    p.add_argument("--jwks", metavar="FILE", help="JWK Set of trusted CDS clients (JSON)")
    p.add_argument("--jku", action="append", metavar="URL",
                   help="a JWK Set URL a token's jku may name (allow-list, repeatable)")
    p.add_argument("--issuer", action="append", metavar="ISS",
                   help="an accepted JWT iss (allow-list, repeatable)")
    p.add_argument("--insecure-no-auth", action="store_true",
                   help="accept unauthenticated calls (loopback host and clients only)")
    p.add_argument("--audit-db", default="dryneedle-audit.sqlite", metavar="FILE",
                   help="SQLite audit log of cards and feedback (default: %(default)s)")
    p.add_argument("--audit-key-file", metavar="FILE",
                   help="key for the patient-id HMAC stored in the audit log (default: none "
                   "stored)")
    p.add_argument("--fhir-server", action="append", metavar="URL",
                   help="fhirServer base URL the service may fetch from (allow-list; default: "
                   "any https server)")
    p.add_argument("--max-body", type=int, default=1024 * 1024, metavar="BYTES",
                   help="largest request body (default: %(default)s)")
    p.add_argument("--body-timeout", type=float, default=10.0, metavar="S",
                   help="seconds to receive a body (default: %(default)s)")
    p.add_argument("--header-timeout", type=float, default=10.0, metavar="S",
                   help="seconds to receive the headers (default: %(default)s)")
    p.add_argument("--max-connections", type=int, default=2048, metavar="N",
                   help="concurrent connections per process (503 beyond; default: %(default)s)")
    p.add_argument("--workers", type=int, default=8, metavar="N",
                   help="requests handled at once, per process (threads, computing or waiting "
                   "for fhirServer; default: %(default)s)")
    p.add_argument("--cpu-slots", type=int, default=2, metavar="N",
                   help="of those, requests computing at once, per process (the others wait "
                   "their turn in order; default: %(default)s)")
    p.add_argument("--switch-interval", type=float, default=2.0,  # service SWITCH_INTERVAL
                   metavar="MS", help="thread switch interval of each server process "
                   "(default: %(default)s ms; Python's own: 5)")
    p.add_argument("--processes", type=int, default=1, metavar="N",
                   help="server processes sharing the port (default: %(default)s); the limits "
                   "(--max-connections, --workers, ...) apply per process, the jti replay "
                   "cache and the audit log are shared SQLite files")
    p.add_argument("--replay-db", metavar="FILE",
                   help="SQLite file of the JWT jti replay cache (default: AUDIT-DB.replay)")
    add_policy_option(p)
    p.add_argument("--always-card", action="store_true",
                   help="return an info card even when there is nothing to say")
    p.add_argument("--cors-origin", action="append", metavar="ORIGIN",
                   help="allow browser calls from this origin (repeatable)")
    p.add_argument("--http", choices=("auto", "httptools", "h11"), default="auto",
                   help="HTTP/1.1 implementation (default: %(default)s, httptools when "
                   "installed, else h11; the same limits on either)")
    p.add_argument("--access-log", action="store_true",
                   help="log a line per request (uvicorn's access log; off by default: the "
                   "audit log records every card)")
    p.add_argument("--server-timing", action="store_true",
                   help="add a Server-Timing header to hook responses (time in the service)")
    p.set_defaults(func=_cmd_serve)

    a = sub.add_parser(
        "audit",
        help="query the CDS service's audit log (cards issued, feedback)",
        description="Read the append-only audit log of 'dryneedle serve' (SQLite). 'list' "
        "prints the rows of a table, 'show' every row of one card uuid, 'stats' counts: one "
        "JSON object per line.",
    )
    a.add_argument("action", choices=("list", "show", "stats"))
    a.add_argument("card", nargs="?", help="the card uuid (show)")
    a.add_argument("--db", required=True, metavar="FILE", help="the audit database")
    a.add_argument("--table", choices=("cards", "feedback"), default="feedback",
                   help="table to list (default: %(default)s)")
    a.set_defaults(func=_cmd_audit)

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
    s.add_argument("--codes", action="append", metavar="FILE",
                   help="a clinic's own answer-code table (the JSON format of the shipped "
                   "fhir/data/answer-codes-*.json), merged on top (repeatable)")
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
