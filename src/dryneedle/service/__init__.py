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

The logic is plain functions over JSON (:func:`discovery`, :func:`handle_hook`,
:func:`parse_feedback`), usable from any framework.

May import: the standard library, :mod:`dryneedle.fhir` and the layers below, and the
``service`` extra (starlette, uvicorn, httpx, PyJWT) -- lazily, where it is used.
"""

from __future__ import annotations

from dryneedle.service._app import LOOPBACK, create_app
from dryneedle.service._audit import AuditLog, UnknownCardError
from dryneedle.service._auth import ALGORITHMS, AuthError, JwtAuth
from dryneedle.service._fetch import FetchError, FhirFetcher
from dryneedle.service._hooks import (
    EXTENSION,
    LEGACY_KEYS,
    MAX_DEPTH,
    PREFETCH,
    REQUIRED_PREFETCH,
    SERVICES,
    HookError,
    discovery,
    handle_hook,
    operation_outcome_error,
    parse_feedback,
    parse_json,
)
from dryneedle.service._limits import BodyLimitMiddleware
from dryneedle.service._openapi import openapi
from dryneedle.service._server import server_config
from dryneedle.service._sites import SNOMED, SNOMED_BODY_SITES, SNOMED_LATERALITY, planned_sites

__all__ = [
    "ALGORITHMS",
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
    "UnknownCardError",
    "create_app",
    "discovery",
    "handle_hook",
    "openapi",
    "operation_outcome_error",
    "parse_feedback",
    "parse_json",
    "planned_sites",
    "server_config",
]
