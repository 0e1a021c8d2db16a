"""A reference CDS Hooks 2.0 service for dry-needling screening (extra ``service``).

A small Starlette application (:func:`create_app`) that an EHR sandbox can call:

* ``GET /cds-services`` -- discovery: two services, ``dryneedle-screening`` on the
  ``patient-view`` hook and ``dryneedle-screening-order-select`` on ``order-select`` (a CDS
  service has exactly one hook), each with the prefetch templates of :data:`PREFETCH`;
* ``POST /cds-services/{id}`` -- screens the patient from the prefetched resources and answers
  ``{"cards": [...]}`` (:func:`dryneedle.fhir.cds_cards`); an empty ``cards`` array when there
  is nothing to say.

The service never calls out: it does not fetch from ``fhirServer``. When a required prefetch
key is absent it answers **412 Precondition Failed** (``cds-hooks-2.0``); a key present with
``null`` means "no data", which maps to unknown answers, never to "no". The evaluation date is
today in UTC, read once per request at this boundary (the rules never read the clock), unless
the request's ``extension`` gives one (see :data:`EXTENSION`).

It has **no authentication** (CDS Hooks clients send a JWT the service should verify): run it on
localhost for development and sandboxes, or behind a gateway that authenticates callers.

The HTTP layer is thin: :func:`discovery` and :func:`handle_hook` are plain functions over JSON
data, usable from any framework.

>>> from datetime import date
>>> from dryneedle.service import handle_hook
>>> status, body = handle_hook("dryneedle-screening", {
...     "hook": "patient-view", "hookInstance": "0c6d0e44-6a1a-4c2e-9a53-3b1f2f7b1f00",
...     "context": {"patientId": "p1"}, "prefetch": {"patient": None}})
>>> status, sorted(body["missingPrefetch"])
(412, ['allergies', 'conditions', 'medications', 'pregnancy'])
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Final

from dryneedle.fhir import (
    ALLERGY_TERMS,
    FLAG_CODES,
    FhirInputError,
    cds_response,
    planned_sites_from_fhir,
    screen_fhir,
)
from dryneedle.model import Side
from dryneedle.policy import DEFAULT_POLICY, Policy
from dryneedle.screening import PlannedSite

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = [
    "EXTENSION",
    "PREFETCH",
    "REQUIRED_PREFETCH",
    "SERVICES",
    "create_app",
    "discovery",
    "handle_hook",
]

PREFETCH: Final[Mapping[str, str]] = {
    "patient": "Patient/{{context.patientId}}",
    "conditions": "Condition?patient={{context.patientId}}",
    "medications": "MedicationStatement?patient={{context.patientId}}",
    "medicationRequests": "MedicationRequest?patient={{context.patientId}}",
    "allergies": "AllergyIntolerance?patient={{context.patientId}}",
    "pregnancy": "Observation?patient={{context.patientId}}&code=http://loinc.org|82810-3",
}
"""Prefetch templates (``cds-hooks-2.0``), by prefetch key."""

REQUIRED_PREFETCH: Final[tuple[str, ...]] = (
    "patient", "conditions", "medications", "allergies", "pregnancy",
)
"""Prefetch keys that must be present (``null`` allowed); otherwise the answer is 412."""

EXTENSION: Final = "io.readthedocs.dryneedle"
"""Key of the request ``extension`` object dryneedle reads (all optional):

* ``on`` -- evaluation date ``YYYY-MM-DD`` (default: today in UTC);
* ``answers`` -- screening answers collected outside FHIR (see
  :func:`dryneedle.fhir.patient_from_fhir`);
* ``sites`` -- planned sites, ``[{"muscle": "upper_trapezius", "side": "left"}]``.
"""

_DESCRIPTION: Final = (
    "Screens the patient for dry needling (contraindications, precautions, unknown answers) "
    "from Patient, Condition, MedicationStatement/MedicationRequest, AllergyIntolerance and "
    "pregnancy-status Observation data, with every finding's basis and sources."
)

SERVICES: Final[tuple[Mapping[str, Any], ...]] = (
    {
        "hook": "patient-view",
        "title": "Dry needling screening",
        "description": _DESCRIPTION,
        "id": "dryneedle-screening",
        "prefetch": dict(PREFETCH),
    },
    {
        "hook": "order-select",
        "title": "Dry needling screening (orders)",
        "description": _DESCRIPTION + " Planned sites come from draft ServiceRequest bodySites "
        "coded in dryneedle's muscle code system; draft medication orders count.",
        "id": "dryneedle-screening-order-select",
        "prefetch": dict(PREFETCH),
    },
)
"""The CDS services this application offers (the discovery response's ``services``)."""

_BY_ID: Final = {s["id"]: s for s in SERVICES}


class _HookError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"error": message, **extra}


def _utc_today() -> date:
    return datetime.now(UTC).date()


def discovery() -> dict[str, Any]:
    """Return the discovery response ``{"services": [...]}``."""
    return {"services": [dict(s) for s in SERVICES]}


def _sites(value: Any) -> list[PlannedSite]:
    if not isinstance(value, list):
        raise _HookError(400, f"extension {EXTENSION}.sites must be an array")
    sites = []
    for item in value:
        if not isinstance(item, Mapping) or not isinstance(item.get("muscle"), str):
            raise _HookError(400, f"extension {EXTENSION}.sites: each site needs a muscle")
        try:
            side = Side(item.get("side", "midline"))
        except ValueError:
            raise _HookError(400, f"extension {EXTENSION}.sites: invalid side") from None
        sites.append(PlannedSite(muscle=item["muscle"], side=side))
    return sites


def _parse(body: bytes | str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(body, Mapping):
        return body
    try:
        data = json.loads(body)
    except ValueError:
        raise _HookError(400, "request body is not valid JSON") from None
    if not isinstance(data, Mapping):
        raise _HookError(400, "request body must be a JSON object")
    return data


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
) -> dict[str, Any]:
    service = _BY_ID.get(service_id)
    if service is None:
        raise _HookError(404, f"no CDS service {service_id!r}")
    request = _parse(body)
    hook = request.get("hook")
    if hook != service["hook"]:
        raise _HookError(400, f"service {service_id!r} answers the {service['hook']!r} hook")
    instance = request.get("hookInstance")
    if not isinstance(instance, str) or not instance:
        raise _HookError(400, "hookInstance is required")
    context = request.get("context")
    if not isinstance(context, Mapping) or not isinstance(context.get("patientId"), str):
        raise _HookError(400, "context.patientId is required")
    prefetch = request.get("prefetch", {})
    if not isinstance(prefetch, Mapping):
        raise _HookError(400, "prefetch must be an object")
    missing = [key for key in required_prefetch if key not in prefetch]
    if missing:
        raise _HookError(
            412,
            "required prefetch missing (this service does not fetch from the FHIR server)",
            missingPrefetch=missing,
        )
    resources: list[Any] = []
    for key in PREFETCH:  # template order: deterministic provenance
        value = prefetch.get(key)
        if value is not None and not isinstance(value, Mapping):
            raise _HookError(400, f"prefetch {key!r} must be a FHIR resource or null")
        resources.append(value)
    sites: list[PlannedSite] = []
    if hook == "order-select":
        drafts = context.get("draftOrders")
        resources.append(drafts if isinstance(drafts, Mapping) else None)
        sites.extend(planned_sites_from_fhir(drafts if isinstance(drafts, Mapping) else None))
    ext = _extension(request)
    if "sites" in ext:
        sites.extend(_sites(ext["sites"]))
    on = _on(ext, today)
    answers = ext.get("answers")
    if answers is not None and not isinstance(answers, Mapping):
        raise _HookError(400, f"extension {EXTENSION}.answers must be an object")
    try:
        screening = screen_fhir(
            resources, on=on, sites=sites, policy=policy, patient_id=context["patientId"],
            answers=answers, flag_codes=flag_codes, allergy_terms=allergy_terms,
        )
    except FhirInputError as exc:
        raise _HookError(400, str(exc)) from None
    return cds_response(screening.result, inputs=screening.inputs, always=always,
                        uuid_seed=instance)


def _extension(request: Mapping[str, Any]) -> Mapping[str, Any]:
    ext = request.get("extension")
    if ext is None:
        return {}
    ours = ext.get(EXTENSION) if isinstance(ext, Mapping) else None
    if ours is None:
        return {}
    if not isinstance(ours, Mapping):
        raise _HookError(400, f"extension {EXTENSION} must be an object")
    return ours


def _on(ext: Mapping[str, Any], today: Callable[[], date]) -> date:
    if "on" not in ext:
        return today()  # the one clock read of the request
    text = ext["on"]
    try:
        if not isinstance(text, str) or len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise _HookError(400, f"extension {EXTENSION}.on must be a date YYYY-MM-DD") from None


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
) -> tuple[int, dict[str, Any]]:
    """Answer one CDS Hooks call: return ``(HTTP status, JSON body)``.

    Args:
        service_id: The ``{id}`` of ``/cds-services/{id}``.
        body: The request body (raw JSON or decoded).
        policy: The screening policy.
        today: Returns the evaluation date when the request gives none (called at most once).
        required_prefetch: Prefetch keys whose absence gives 412.
        flag_codes: Coded data that sets history answers (:data:`dryneedle.fhir.FLAG_CODES`).
        allergy_terms: Words marking a metal allergy.
        always: Return an ``info`` card even when there is nothing to say.

    Returns:
        ``(200, {"cards": [...]})``; ``(412, {...})`` when required prefetch is missing;
        ``(400, {...})`` for a malformed request; ``(404, {...})`` for an unknown service.
    """
    try:
        return 200, _evaluate(
            service_id, body, policy=policy, today=today, required_prefetch=required_prefetch,
            flag_codes=flag_codes, allergy_terms=allergy_terms, always=always,
        )
    except _HookError as exc:
        return exc.status, exc.body


def create_app(
    policy: Policy = DEFAULT_POLICY,
    *,
    today: Callable[[], date] = _utc_today,
    required_prefetch: Sequence[str] = REQUIRED_PREFETCH,
    flag_codes: Mapping[str, Mapping[str, Sequence[str]]] = FLAG_CODES,
    allergy_terms: Sequence[str] = ALLERGY_TERMS,
    always: bool = False,
    cors_origins: Sequence[str] = (),
) -> Starlette:
    """Return the Starlette application of the reference CDS Hooks service.

    Args:
        policy: The screening policy.
        today: Returns today's date (default: UTC), read once per request.
        required_prefetch: Prefetch keys whose absence gives 412.
        flag_codes: Coded data that sets history answers.
        allergy_terms: Words marking a metal allergy.
        always: Return an ``info`` card even when there is nothing to say.
        cors_origins: Browser origins allowed to call the service (e.g. a CDS Hooks sandbox).

    Returns:
        The ASGI application (serve it with uvicorn: ``dryneedle serve``).

    Raises:
        ImportError: When the ``service`` extra (starlette) is not installed.
    """
    try:
        from starlette.applications import Starlette  # noqa: PLC0415 - optional extra
        from starlette.middleware import Middleware  # noqa: PLC0415
        from starlette.middleware.cors import CORSMiddleware  # noqa: PLC0415
        from starlette.requests import Request  # noqa: PLC0415
        from starlette.responses import JSONResponse  # noqa: PLC0415
        from starlette.routing import Route  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - exercised without the extra
        msg = "the reference service needs the 'service' extra: pip install 'dryneedle[service]'"
        raise ImportError(msg) from exc

    async def services(request: Request) -> JSONResponse:
        return JSONResponse(discovery())

    async def call(request: Request) -> JSONResponse:
        status, body = handle_hook(
            str(request.path_params["service_id"]), await request.body(), policy=policy,
            today=today, required_prefetch=required_prefetch, flag_codes=flag_codes,
            allergy_terms=allergy_terms, always=always,
        )
        return JSONResponse(body, status_code=status)

    middleware = []
    if cors_origins:
        middleware.append(Middleware(
            CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        ))
    return Starlette(
        routes=[
            Route("/cds-services", services, methods=["GET"]),
            Route("/cds-services/{service_id}", call, methods=["POST"]),
        ],
        middleware=middleware,
    )
