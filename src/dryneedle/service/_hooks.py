"""CDS Hooks 2.0 calls as plain functions over JSON data (no HTTP, no framework).

What it is for: :data:`SERVICES` and :func:`discovery` (four services, one hook each:
``patient-view``, ``order-select``, ``order-sign``, ``appointment-book``, with the US Core
prefetch templates of :data:`PREFETCH`); :func:`handle_hook` (screen the patient of one call and
answer ``{"cards": [...]}``) and :func:`parse_feedback` (check a feedback body). A prefetch key
that is omitted or holds an ``OperationOutcome`` is fetched from ``fhirServer`` when the call
gives a ``fhirAuthorization`` and the service has a fetcher; **412** only when a required key can
be had neither way. A key present with ``null`` (the query found nothing) is not proof of
absence: the answers it would settle stay unknown. Errors are FHIR ``OperationOutcome`` bodies.

May import: the standard library (and the optional orjson), :mod:`dryneedle.fhir`,
:mod:`dryneedle.model`, :mod:`dryneedle.policy`, :mod:`dryneedle.screening` and, in this
package, :mod:`._sites` and :mod:`._fetch`.

>>> from datetime import date
>>> from dryneedle.service import handle_hook
>>> status, body = handle_hook("dryneedle-screening", {
...     "hook": "patient-view", "hookInstance": "0c6d0e44-6a1a-4c2e-9a53-3b1f2f7b1f00",
...     "context": {"patientId": "p1"}, "prefetch": {"patient": None}})
>>> status, [i["expression"][0] for i in body["issue"]]  # doctest: +NORMALIZE_WHITESPACE
(412, ['prefetch.medicationRequests', 'prefetch.conditions', 'prefetch.allergies',
       'prefetch.pregnancy'])
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from itertools import accumulate
from typing import Any, Final
from urllib.parse import quote

from dryneedle.fhir import (
    ALLERGY_TERMS,
    FLAG_CODES,
    FhirInputError,
    cds_response,
    screen_fhir,
)
from dryneedle.model import Side, SiteFinding
from dryneedle.policy import DEFAULT_POLICY, Policy
from dryneedle.screening import PlannedSite
from dryneedle.service._fetch import FetchError
from dryneedle.service._sites import planned_sites
from dryneedle.wire import converter

__all__ = [
    "CONTEXT_ORDERS",
    "EXTENSION",
    "LEGACY_KEYS",
    "MAX_DEPTH",
    "PREFETCH",
    "REQUIRED_PREFETCH",
    "SERVICES",
    "HookError",
    "discovery",
    "handle_hook",
    "operation_outcome_error",
    "parse_feedback",
    "parse_json",
]

PREFETCH: Final[Mapping[str, str]] = {
    "patient": "Patient/{{context.patientId}}",
    "medicationRequests": "MedicationRequest?patient={{context.patientId}}",
    "medicationStatements": "MedicationStatement?patient={{context.patientId}}",
    "conditions": "Condition?patient={{context.patientId}}",
    "allergies": "AllergyIntolerance?patient={{context.patientId}}",
    "pregnancy": "Observation?patient={{context.patientId}}&code=http://loinc.org|82810-3",
    "procedures": "Procedure?patient={{context.patientId}}",
}
"""Prefetch templates (``cds-hooks-2.0``), by prefetch key: the US Core searches (``us-core``)
for the patient, its MedicationRequests of every status (where US EHRs keep prescriptions; an
``on-hold``, ``draft`` or ``unknown`` prescription bears on the antithrombotic answer, so the
search is not limited to ``status=active``),
MedicationStatements (used when given), Conditions, AllergyIntolerances, the pregnancy-status
Observation (LOINC 82810-3) and Procedures (site findings such as recent surgery)."""

REQUIRED_PREFETCH: Final[tuple[str, ...]] = (
    "patient", "medicationRequests", "conditions", "allergies", "pregnancy",
)
"""Prefetch keys that must be given (``null`` allowed) or fetchable; otherwise 412."""

LEGACY_KEYS: Final[Mapping[str, str]] = {"medications": "medicationStatements"}
"""Prefetch keys of dryneedle 0.1 still read: ``medications`` held MedicationStatements."""

EXTENSION: Final = "io.readthedocs.dryneedle"
"""Key of the request ``extension`` object dryneedle reads (all optional):

* ``on`` -- deprecated: the service always screens as of its own date (today in UTC, read
  once per request); an ``on`` other than that date is refused with 400;
* ``answers`` -- screening answers collected outside FHIR (see
  :func:`dryneedle.fhir.patient_from_fhir`);
* ``sites`` -- planned sites, ``[{"muscle": "upper_trapezius", "side": "left"}]``;
* ``site_findings`` -- the clinician's inspection of the planned sites, record-format site
  findings (``[]``: inspected, none); absent or ``null``, and with no usable FHIR site data, the
  planned sites are unknown and the card says "needs review" (SPEC §3 1.1).
"""

MAX_DEPTH: Final = 64
"""Deepest JSON nesting accepted in a request body (deeper is a 400)."""

_DESCRIPTION: Final = (
    "Screens the patient for dry needling (contraindications, precautions, unknown answers) "
    "from Patient, MedicationRequest/MedicationStatement, Condition, AllergyIntolerance, "
    "pregnancy-status Observation and Procedure data, with every finding's basis and sources."
)
_ORDERS: Final = (
    " Planned sites come from the bodySite of ServiceRequests in context.draftOrders, coded in "
    "dryneedle's muscle code system or SNOMED CT; an unrecognised site is reviewed, never "
    "assumed safe. Draft medication orders count."
)

SERVICES: Final[tuple[Mapping[str, Any], ...]] = (
    {"hook": "patient-view", "title": "Dry needling screening", "description": _DESCRIPTION,
     "id": "dryneedle-screening", "prefetch": dict(PREFETCH)},
    {"hook": "order-select", "title": "Dry needling screening (order select)",
     "description": _DESCRIPTION + _ORDERS, "id": "dryneedle-screening-order-select",
     "prefetch": dict(PREFETCH)},
    {"hook": "order-sign", "title": "Dry needling screening (order sign)",
     "description": _DESCRIPTION + _ORDERS, "id": "dryneedle-screening-order-sign",
     "prefetch": dict(PREFETCH)},
    {"hook": "appointment-book", "title": "Dry needling screening (appointment booking)",
     "description": _DESCRIPTION + " Planned sites come from ServiceRequests in "
     "context.appointments (in the bundle or contained in an Appointment).",
     "id": "dryneedle-screening-appointment-book", "prefetch": dict(PREFETCH)},
)
"""The CDS services this application offers (the discovery response's ``services``)."""

_BY_ID: Final = {s["id"]: s for s in SERVICES}
CONTEXT_ORDERS: Final[Mapping[str, str]] = {
    "order-select": "draftOrders", "order-sign": "draftOrders",
    "appointment-book": "appointments",
}
"""Hook -> the ``context`` key holding the orders (a FHIR Bundle) planned sites are read from."""
_TOKEN: Final = re.compile(r"\{\{context\.patientId\}\}")
_ISSUE_CODE: Final[Mapping[int, str]] = {
    400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 408: "timeout",
    412: "incomplete", 413: "too-costly", 415: "not-supported", 503: "transient",
}

Fetch = Callable[[str, str, str], Mapping[str, Any] | None]
"""``fetch(fhirServer, query, access_token)`` -> resource / searchset / ``None``; raises
:class:`~dryneedle.service.FetchError`."""


def operation_outcome_error(status: int, message: str,
                            expressions: Sequence[str] = ()) -> dict[str, Any]:
    """Return an error body: a FHIR ``OperationOutcome`` (one issue per expression, or one).

    Args:
        status: The HTTP status (chooses the issue ``code``).
        message: The ``diagnostics`` text (never a patient identifier).
        expressions: Where in the request the problem is (e.g. ``prefetch.conditions``).
    """
    code = _ISSUE_CODE.get(status, "processing")
    if not expressions:
        return {"resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": code, "diagnostics": message}]}
    return {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": code, "diagnostics": message, "expression": [e]}
        for e in expressions]}


class HookError(Exception):
    """A call that cannot be answered: an HTTP status and an ``OperationOutcome`` body."""

    def __init__(self, status: int, message: str, expressions: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.body = operation_outcome_error(status, message, expressions)


def _utc_today() -> date:
    return datetime.now(UTC).date()


def discovery() -> dict[str, Any]:
    """Return the discovery response ``{"services": [...]}``."""
    return {"services": [dict(s) for s in SERVICES]}


_NUMBERS: Final = b"0123456789,"
_DROP: Final = bytes(b for b in range(256) if b not in b'[]{}"' + _NUMBERS)
_STEP: Final = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
_PARENS: Final = bytes.maketrans(b"[{]}", b"(())")


def _outside(text: bytes) -> bytes:
    """The brackets, digits and commas of a JSON text outside its strings, in order.

    Removes escaped backslashes and quotes (when there is a backslash at all), keeps only
    brackets, digits, commas and quotes (C speed, one pass), drops the empty strings left
    (two quotes in a row: every other quote keeps its rank, so whether a kept byte is inside
    a string is unchanged), then the insides of the others. The digits are those of the
    numbers (a number is never inside a string), commas keeping two numbers apart.
    """
    if b"\\" in text:
        text = text.replace(b"\\\\", b"").replace(b'\\"', b"")
    skeleton = text.translate(None, _DROP).replace(b'""', b"")
    return b"".join(skeleton.split(b'"')[::2])


def _deeper(outside: bytes, max_depth: int) -> bool:
    """Whether brackets (those of :func:`_outside`) nest deeper than ``max_depth``.

    The depth is the most +1 / -1 summed over the brackets reach (the sum is only needed
    near the limit).

    With ``(`` for an opening bracket and ``)`` for a closing one: removing ``()`` pairs
    lowers the deepest nesting by at most one per round (a deepest ``(`` removed follows,
    past removed pairs, a bracket one level up, or the start), so rounds done plus the ``(``
    left bound it; a round that removes nothing leaves the exact sum to decide.
    """
    if max_depth >= 0:
        left = outside.translate(_PARENS)
        for rounds in range(max_depth + 1):
            if rounds + left.count(b"(") <= max_depth:
                return False
            fewer = left.replace(b"()", b"")
            if len(fewer) == len(left):
                break
            left = fewer
    return max(accumulate(map(_STEP.__getitem__, outside)), default=0) > max_depth


_fast_loads: Callable[[bytes], Any] | None = None
_FastError: type[Exception] = ValueError
try:  # extra "fast": parses what it accepts as json.loads does, ~3x faster
    import orjson
except ImportError:  # pragma: no cover - exercised where the extra is not installed
    pass
else:
    _fast_loads = orjson.loads
    _FastError = orjson.JSONDecodeError
_LONG_DIGITS: Final = b"0" * 19  # orjson reads integers beyond 64 bits differently
_DIGITS: Final = bytes(0x30 if 0x30 <= c <= 0x39 else 0x20 for c in range(256))


def parse_json(body: bytes | str | Mapping[str, Any], *, max_depth: int = MAX_DEPTH) -> Any:
    """Decode a request body; raise :class:`HookError` 400 when it is not JSON or too deep.

    The value is :func:`json.loads`'s (duplicate keys: the last value; ``NaN``, integers of
    any length, lone surrogates, UTF-16 accepted as it accepts them). With orjson installed it
    parses the body when no run of 19 digits is outside its strings (where the numbers are);
    whatever orjson refuses (``NaN``, a lone surrogate, a BOM, invalid UTF-8, ...) is parsed,
    or refused, by :func:`json.loads`.
    """
    if isinstance(body, Mapping):
        return body
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    outside = _outside(raw)  # one scan gives the brackets and the numbers' digits
    # The depth is checked before parsing: a deep body costs no recursion. A text no longer
    # than the limit cannot nest deeper.
    if len(raw) > max_depth and _deeper(outside.translate(None, _NUMBERS), max_depth):
        raise HookError(400, f"request body is nested deeper than {max_depth} levels")
    # orjson accepts only valid JSON, whose quotes delimit its strings exactly: a number
    # orjson would read differently is a run of digits outside them.
    if _fast_loads is not None and _LONG_DIGITS not in outside.translate(_DIGITS):
        try:
            return _fast_loads(raw)
        except _FastError:
            pass  # json.loads below gives the value, or the 400
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise HookError(400, "request body is not valid JSON") from None


def _sites(value: Any) -> list[PlannedSite]:
    where = f"extension.{EXTENSION}.sites"
    if not isinstance(value, list):
        raise HookError(400, f"{where} must be an array", [where])
    sites = []
    for item in value:
        if not isinstance(item, Mapping) or not isinstance(item.get("muscle"), str):
            raise HookError(400, f"{where}: each site needs a muscle", [where])
        try:
            side = Side(item.get("side", "midline"))
        except ValueError:
            raise HookError(400, f"{where}: invalid side", [where]) from None
        sites.append(PlannedSite(muscle=item["muscle"], side=side))
    return sites


_PREFETCH_KEYS: Final = (*PREFETCH, *LEGACY_KEYS)


def _is_object(value: Any) -> bool:
    """A JSON object: a dict (what decoding gives, checked first: no ABC call) or a Mapping."""
    return type(value) is dict or isinstance(value, Mapping)


def _is_outcome(value: Any) -> bool:
    return _is_object(value) and value.get("resourceType") == "OperationOutcome"


def _fhir_access(request: Mapping[str, Any], fetch: Fetch | None) -> tuple[str, str] | None:
    server = request.get("fhirServer")
    auth = request.get("fhirAuthorization")
    if server is not None and (not isinstance(server, str) or not server):
        raise HookError(400, "fhirServer must be a URL", ["fhirServer"])
    if auth is None:
        return None
    if not isinstance(auth, Mapping) or not isinstance(auth.get("access_token"), str):
        raise HookError(400, "fhirAuthorization.access_token is required",
                        ["fhirAuthorization"])
    if not isinstance(server, str) or not server:  # cds-r-1
        raise HookError(400, "fhirServer is required with fhirAuthorization", ["fhirServer"])
    if fetch is None:
        return None
    return server, auth["access_token"]


def _prefetch(
    request: Mapping[str, Any], patient_id: str, required: Sequence[str], fetch: Fetch | None,
) -> dict[str, Any]:
    given = request.get("prefetch", {})
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise HookError(400, "prefetch must be an object", ["prefetch"])
    given = dict(given)
    for old, new in LEGACY_KEYS.items():
        if old in given and new not in given:
            given[new] = given[old]
    for key in _PREFETCH_KEYS:  # every given value checked before any fetch
        value = given.get(key)
        if value is not None and not _is_object(value):
            raise HookError(400, f"prefetch {key!r} must be a FHIR resource or null",
                            [f"prefetch.{key}"])
    access = _fhir_access(request, fetch)
    out: dict[str, Any] = {}
    missing: list[str] = []
    for key, template in PREFETCH.items():  # template order: deterministic provenance
        value = given.get(key, _is_outcome)
        if value is not _is_outcome and not _is_outcome(value):
            out[key] = value
            continue
        if access is not None and fetch is not None:
            query = _TOKEN.sub(quote(patient_id, safe=""), template)
            try:
                out[key] = fetch(access[0], query, access[1])
                continue
            except FetchError:
                pass
        if key in required:
            missing.append(key)
        else:
            out[key] = None  # optional and unavailable: what it would settle stays unknown
    if missing:
        raise HookError(
            412, "required FHIR data is missing: not prefetched and not fetchable from "
            "fhirServer", [f"prefetch.{k}" for k in missing])
    return out


def _evaluate(
    service_id: str,
    body: bytes | str | Mapping[str, Any],
    *,
    policy: Policy,
    today: Callable[[], date],
    required_prefetch: Sequence[str],
    flag_codes: Mapping[str, Mapping[str, Sequence[str]]],
    allergy_terms: Sequence[str],
    always: bool,
    fetch: Fetch | None,
    codes: Sequence[Mapping[str, Mapping[str, tuple[tuple[str, str | None], ...]]]] = (),
) -> tuple[dict[str, Any], Mapping[str, Any]]:
    service = _BY_ID.get(service_id)
    if service is None:
        raise HookError(404, f"no CDS service {service_id!r}")
    request = parse_json(body)
    if not _is_object(request):
        raise HookError(400, "request body must be a JSON object")
    hook = request.get("hook")
    if hook != service["hook"]:
        raise HookError(400, f"service {service_id!r} answers the {service['hook']!r} hook",
                        ["hook"])
    instance = request.get("hookInstance")
    if not isinstance(instance, str) or not instance:
        raise HookError(400, "hookInstance is required", ["hookInstance"])
    context = request.get("context")
    if not _is_object(context) or not isinstance(context.get("patientId"), str) \
            or not context["patientId"]:
        raise HookError(400, "context.patientId is required", ["context.patientId"])
    patient_id = context["patientId"]
    # The whole request is checked (400) before missing data is reported (412).
    orders: Any = None
    orders_key = CONTEXT_ORDERS.get(str(hook))
    if orders_key is not None:
        orders = context.get(orders_key)
        if orders is not None and not isinstance(orders, (Mapping, list)):
            raise HookError(400, f"context.{orders_key} must be a FHIR Bundle",
                            [f"context.{orders_key}"])
    sites = planned_sites(orders) if orders_key is not None else []
    ext = _extension(request)
    if "sites" in ext:
        sites.extend(_sites(ext["sites"]))
    on = _on(ext, today)
    answers = ext.get("answers")
    if answers is not None and not isinstance(answers, Mapping):
        where = f"extension.{EXTENSION}.answers"
        raise HookError(400, f"{where} must be an object", [where])
    findings = _site_findings(ext)
    prefetch = _prefetch(request, patient_id, required_prefetch, fetch)
    resources: list[Any] = list(prefetch.values())
    if orders_key is not None:
        resources.append(orders)
    try:
        screening = screen_fhir(
            resources, on=on, sites=sites, policy=policy, patient_id=patient_id,
            answers=answers, flag_codes=flag_codes, allergy_terms=allergy_terms,
            codes=codes, site_findings=findings,
        )
    except (FhirInputError, TypeError, ValueError) as exc:
        raise HookError(400, str(exc) or "unusable FHIR data") from None
    return cds_response(screening.result, inputs=screening.inputs, always=always,
                        uuid_seed=instance), request


def _site_findings(ext: Mapping[str, Any]) -> list[SiteFinding] | None:
    """The clinician's inspection from the extension: ``None`` (not given) keeps sites unknown."""
    if "site_findings" not in ext or ext["site_findings"] is None:
        return None
    where = f"extension.{EXTENSION}.site_findings"
    raw = ext["site_findings"]
    if not isinstance(raw, list):
        raise HookError(400, f"{where} must be a list", [where])
    out: list[SiteFinding] = []
    for i, item in enumerate(raw):
        try:
            out.append(converter.structure(item, SiteFinding))
        except Exception:  # cattrs raises many kinds; every one means "unreadable"
            raise HookError(400, f"{where}[{i}] is not a site finding "
                            "(region, side, kind, optional date)", [f"{where}[{i}]"]) from None
    return out


def _extension(request: Mapping[str, Any]) -> Mapping[str, Any]:
    ext = request.get("extension")
    if ext is None:
        return {}
    if not isinstance(ext, Mapping):  # cds-hooks-2.0: extension is an object
        raise HookError(400, "extension must be an object", ["extension"])
    ours = ext.get(EXTENSION)
    if ours is None:
        return {}
    if not isinstance(ours, Mapping):
        raise HookError(400, f"extension {EXTENSION} must be an object",
                        [f"extension.{EXTENSION}"])
    return ours


def _on(ext: Mapping[str, Any], today: Callable[[], date]) -> date:
    """The evaluation date: the service's own today (UTC), the one clock read of the request.

    A live hook is about today: a client cannot choose another evaluation date (a future one
    would age a child into adulthood, a past one keep an old pregnancy status or a surgery
    window current). ``on`` is tolerated only when it is that same date; any other is a 400.
    """
    now = today()
    if "on" not in ext:
        return now
    text = ext["on"]
    where = f"extension.{EXTENSION}.on"
    try:
        if not isinstance(text, str) or len(text) != 10:
            raise ValueError(text)
        given = date.fromisoformat(text)
    except ValueError:
        raise HookError(400, f"{where} must be a date YYYY-MM-DD", [where]) from None
    if given != now:
        raise HookError(
            400, f"{where}: this service screens as of its own date, today (UTC) "
            f"{now.isoformat()}; a client cannot choose another evaluation date (omit 'on')",
            [where])
    return now


def handle_hook(
    service_id: str,
    body: bytes | str | Mapping[str, Any],
    *,
    policy: Policy = DEFAULT_POLICY,
    today: Callable[[], date] = _utc_today,
    required_prefetch: Sequence[str] = REQUIRED_PREFETCH,
    flag_codes: Mapping[str, Mapping[str, Sequence[str]]] = FLAG_CODES,
    allergy_terms: Sequence[str] = ALLERGY_TERMS,
    always: bool = False,
    fetch: Fetch | None = None,
    on_cards: Callable[[list[dict[str, Any]], Mapping[str, Any]], None] | None = None,
    codes: Sequence[Mapping[str, Mapping[str, tuple[tuple[str, str | None], ...]]]] = (),
) -> tuple[int, dict[str, Any]]:
    """Answer one CDS Hooks call: return ``(HTTP status, JSON body)``.

    Args:
        service_id: The ``{id}`` of ``/cds-services/{id}``.
        body: The request body (raw JSON or decoded).
        policy: The screening policy.
        today: Returns the evaluation date, the service's today (called once per request; a
            request's ``extension`` ``on`` other than it is a 400).
        required_prefetch: Prefetch keys whose absence (when not fetchable) gives 412.
        flag_codes: Coded data that sets history answers (:data:`dryneedle.fhir.FLAG_CODES`).
        allergy_terms: Words marking a metal allergy.
        always: Return an ``info`` card even when there is nothing to say.
        fetch: Fetches an omitted prefetch key from ``fhirServer`` (e.g.
            :meth:`FhirFetcher.fetch <dryneedle.service.FhirFetcher.fetch>`); ``None`` never
            calls out.
        on_cards: Called with the cards and the request before answering (the audit log).
        codes: A clinic's answer-code tables (:func:`dryneedle.fhir.read_code_table_file`),
            merged on top of the shipped ones.

    Returns:
        ``(200, {"cards": [...]})``; otherwise ``(status, OperationOutcome)``: 412 when
        required data is missing, 400 for a malformed request, 404 for an unknown service.
    """
    try:
        response, request = _evaluate(
            service_id, body, policy=policy, today=today, required_prefetch=required_prefetch,
            flag_codes=flag_codes, allergy_terms=allergy_terms, always=always, fetch=fetch,
            codes=codes,
        )
    except HookError as exc:
        return exc.status, exc.body
    if on_cards is not None:
        on_cards(response["cards"], request)
    return 200, response


_UUID: Final = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                          r"[0-9a-fA-F]{12}$")
_INSTANT: Final = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def _coding(value: Any, where: str) -> None:
    if not isinstance(value, Mapping) or not all(
            isinstance(value.get(k), str) and value[k] for k in ("system", "code")):
        raise HookError(400, f"{where} must be a Coding with system and code", [where])


def parse_feedback(service_id: str, body: bytes | str | Mapping[str, Any]) -> list[Any]:
    """Check a feedback body (``cds-hooks-2.0`` Feedback); return its entries.

    Each entry needs ``card`` (a uuid), ``outcome`` ``accepted`` or ``overridden``
    (3.0 ballot invariant ``cds-fb-1``), ``outcomeTimestamp`` (an RFC 3339 date-time); an
    ``overrideReason`` holds a ``reason`` Coding, a ``userComment``, or both (``cds-fb-3``).
    ``acceptedSuggestions`` are optional: dryneedle's cards carry no suggestions, so an
    ``accepted`` outcome means the card's advice was followed.

    Raises:
        HookError: 404 for an unknown service, 400 for a malformed body.
    """
    if service_id not in _BY_ID:
        raise HookError(404, f"no CDS service {service_id!r}")
    data = parse_json(body)
    entries = data.get("feedback") if isinstance(data, Mapping) else None
    if not isinstance(entries, list) or not entries:
        raise HookError(400, "feedback must be a non-empty array", ["feedback"])
    if len(entries) > 100:
        raise HookError(400, "at most 100 feedback entries per request", ["feedback"])
    for i, e in enumerate(entries):
        at = f"feedback[{i}]"
        if not isinstance(e, Mapping):
            raise HookError(400, f"{at} must be an object", [at])
        if not isinstance(e.get("card"), str) or not _UUID.match(e["card"]):
            raise HookError(400, f"{at}.card must be a card uuid", [f"{at}.card"])
        if e.get("outcome") not in ("accepted", "overridden"):
            raise HookError(400, f"{at}.outcome must be accepted or overridden",
                            [f"{at}.outcome"])
        stamp = e.get("outcomeTimestamp")
        if not isinstance(stamp, str) or not _INSTANT.match(stamp):
            raise HookError(400, f"{at}.outcomeTimestamp must be an RFC 3339 date-time",
                            [f"{at}.outcomeTimestamp"])
        accepted = e.get("acceptedSuggestions", [])
        if not isinstance(accepted, list) or not all(
                isinstance(a, Mapping) and isinstance(a.get("id"), str) for a in accepted):
            raise HookError(400, f"{at}.acceptedSuggestions must be [{{'id': ...}}]",
                            [f"{at}.acceptedSuggestions"])
        reason = e.get("overrideReason")
        if reason is not None:
            where = f"{at}.overrideReason"
            if e["outcome"] != "overridden" or not isinstance(reason, Mapping):
                raise HookError(400, f"{where} is for overridden cards", [where])
            if "reason" not in reason and "userComment" not in reason:  # cds-fb-3
                raise HookError(400, f"{where} needs a reason or a userComment", [where])
            if "reason" in reason:
                _coding(reason["reason"], f"{where}.reason")
            comment = reason.get("userComment")
            if comment is not None and (not isinstance(comment, str) or len(comment) > 4000):
                raise HookError(400, f"{where}.userComment must be text (4000 characters at "
                                "most)", [f"{where}.userComment"])
    return entries
