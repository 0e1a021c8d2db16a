"""A complete, secure CDS Hooks 2.0 service for dry-needling screening (extra ``service``).

:func:`create_app` returns a Starlette application (``dryneedle serve`` runs it with uvicorn):

* ``GET /cds-services`` -- discovery: four services, one hook each (``patient-view``,
  ``order-select``, ``order-sign``, ``appointment-book``), with the US Core prefetch templates
  of :data:`PREFETCH` (``MedicationRequest`` required, ``MedicationStatement`` used when given);
* ``POST /cds-services/{id}`` -- screens the patient and answers ``{"cards": [...]}``
  (:func:`dryneedle.fhir.cds_cards`). A prefetch key omitted or holding an
  ``OperationOutcome`` is fetched from ``fhirServer`` with the ``fhirAuthorization`` bearer
  token (:class:`FhirFetcher`); **412** only when required data can be had neither way. A key
  present with ``null`` is not proof of absence: what it would settle stays unknown. Planned
  sites come from the orders in the context (:func:`planned_sites`, SNOMED CT included);
* ``POST /cds-services/{id}/feedback`` -- accepted / overridden cards with their override
  reasons, stored with the card's finding codes, policy fingerprint and library version in
  the append-only audit log (:class:`AuditLog`, SQLite; ``dryneedle audit`` queries it);
* ``GET /openapi.json`` -- the OpenAPI description (:func:`openapi`).

Hook and feedback calls must carry a JWT signed by a trusted CDS client ("Trusting CDS
Clients", :class:`JwtAuth`); without a key configuration they are refused (401) unless the app
is made with ``insecure_no_auth`` (loopback clients only). Bodies are bounded in size and read
time (:class:`BodyLimitMiddleware`), JSON nesting in depth (:data:`MAX_DEPTH`); screening runs
in a bounded pool of worker threads, off the event loop. Errors are FHIR ``OperationOutcome``.
:func:`serve` runs it in one process or several (``dryneedle serve --processes N``); the JWT
``jti`` replay cache is then shared through SQLite (:class:`SqliteReplayCache`), as the audit
log is, and the limits apply per process.

The logic is plain functions over JSON (:func:`discovery`, :func:`handle_hook`,
:func:`parse_feedback`), usable from any framework.

May import: the standard library, :mod:`dryneedle.fhir` and the layers below, and the
``service`` extra (starlette, uvicorn, httpx, PyJWT) -- lazily, where it is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from dryneedle.service import _app, _auth, _hooks, _sites
from dryneedle.service._app import create_app
from dryneedle.service._audit import AuditLog, UnknownCardError
from dryneedle.service._auth import AuthError, JwtAuth, MemoryReplayCache, ReplayCache
from dryneedle.service._fetch import FetchError, FhirFetcher
from dryneedle.service._hooks import (
    HookError,
    discovery,
    handle_hook,
    operation_outcome_error,
    parse_feedback,
    parse_json,
)
from dryneedle.service._limits import BodyLimitMiddleware
from dryneedle.service._openapi import openapi
from dryneedle.service._replay import SqliteReplayCache
from dryneedle.service._server import serve, server_config
from dryneedle.service._sites import planned_sites

__all__ = [
    "ALGORITHMS",
    "CONTEXT_ORDERS",
    "EXTENSION",
    "LEGACY_KEYS",
    "LOOPBACK",
    "MAX_DEPTH",
    "PREFETCH",
    "REQUIRED_PREFETCH",
    "SERVICES",
    "SNOMED",
    "SNOMED_BODY_SITES",
    "SNOMED_LATERALITY",
    "AuditLog",
    "AuthError",
    "BodyLimitMiddleware",
    "FetchError",
    "FhirFetcher",
    "HookError",
    "JwtAuth",
    "MemoryReplayCache",
    "ReplayCache",
    "SqliteReplayCache",
    "UnknownCardError",
    "create_app",
    "discovery",
    "handle_hook",
    "openapi",
    "operation_outcome_error",
    "parse_feedback",
    "parse_json",
    "planned_sites",
    "serve",
    "server_config",
]

# Bound here with their documentation (what the API reference and the guides link to).
PREFETCH: Final[Mapping[str, str]] = _hooks.PREFETCH
"""Prefetch templates (``cds-hooks-2.0``), by key: the US Core searches (``us-core``) for the
patient, active MedicationRequests (required), MedicationStatements (used when given),
Conditions, AllergyIntolerances, the pregnancy-status Observation (LOINC 82810-3) and
Procedures."""
EXTENSION: Final = _hooks.EXTENSION
"""Key of the request ``extension`` object dryneedle reads (all optional): ``answers``
(screening answers collected outside FHIR), ``sites``
(``[{"muscle": "upper_trapezius", "side": "left"}]``) and ``site_findings``. ``on`` is
deprecated: the service screens as of its own date (today, UTC); an ``on`` other than that
date is refused with 400."""
MAX_DEPTH: Final = _hooks.MAX_DEPTH
"""Deepest JSON nesting accepted in a request body (deeper is a 400)."""
SNOMED_BODY_SITES: Final[Mapping[str, str]] = _sites.SNOMED_BODY_SITES
"""SNOMED CT body-structure concept id -> anatomy-catalog muscle id, exact equivalents only
(concept ids and names as published in DICOM PS3.16 CID 6116, ``snomed-ct``); a SNOMED code
not listed is an unknown site."""
REQUIRED_PREFETCH: Final[tuple[str, ...]] = _hooks.REQUIRED_PREFETCH
"""Prefetch keys that must be given (``null`` allowed) or fetchable; otherwise 412."""
LEGACY_KEYS: Final[Mapping[str, str]] = _hooks.LEGACY_KEYS
"""Prefetch keys of dryneedle 0.1 still read: ``medications`` held MedicationStatements."""
CONTEXT_ORDERS: Final[Mapping[str, str]] = _hooks.CONTEXT_ORDERS
"""Hook -> the ``context`` key whose orders (a FHIR Bundle of ServiceRequests) give the planned
sites: ``draftOrders`` for ``order-select`` and ``order-sign``, ``appointments`` for
``appointment-book``."""
SERVICES: Final = _hooks.SERVICES
"""The CDS services offered (the discovery response's ``services``), one hook each."""
ALGORITHMS: Final = _auth.ALGORITHMS
"""JWT signature algorithms accepted: asymmetric only (``cds-hooks-2.0`` forbids none and
HMAC)."""
LOOPBACK: Final = _app.LOOPBACK
"""Host names and addresses that are the local machine (``insecure_no_auth`` serves only
these)."""
SNOMED: Final = _sites.SNOMED
"""SNOMED CT code system URI (``snomed-ct``)."""
SNOMED_LATERALITY: Final = _sites.SNOMED_LATERALITY
"""SNOMED CT laterality qualifier -> side (7771000 left, 24028007 right, 51440002 right and
left, read as midline)."""
