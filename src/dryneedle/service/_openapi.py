"""The OpenAPI 3.1 description of the service (served at ``/openapi.json``).

What it is for: :func:`openapi` returns the document: discovery, the four hook endpoints (one
path per service, its request schema naming the one hook it answers, with a complete example
request), the feedback endpoints and their request / response shapes (``cds-hooks-2.0``),
every error as a FHIR ``OperationOutcome``. Tools such as schemathesis test the service against it.

May import: the standard library, :mod:`dryneedle._version`, :mod:`dryneedle.model` and, in this
package, :mod:`._hooks`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from dryneedle._version import __version__
from dryneedle.model import Side
from dryneedle.service._hooks import (
    CONTEXT_ORDERS,
    EXTENSION,
    LEGACY_KEYS,
    PREFETCH,
    REQUIRED_PREFETCH,
    SERVICES,
)

__all__ = ["openapi"]

_REF = "#/components/schemas/"


def _json(schema: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": _REF + schema}}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "Malformed request", 401: "Not authenticated (signed JWT required)",
            403: "Forbidden", 404: "Unknown service or card", 408: "Body not received in time",
            412: "Required FHIR data missing (not prefetched, not fetchable)",
            413: "Request body too large", 503: "Overloaded; retry later"}
    return {str(c): {"description": text[c], **_json("OperationOutcome")} for c in codes}


def _on(today: date | None) -> dict[str, Any]:
    """The schema of the deprecated ``on``: only the service's own date is accepted."""
    text = ("Deprecated: the service screens as of its own date (today, UTC); any other date "
            "is refused with 400. Omit it.")
    if today is not None:
        return {"const": today.isoformat(), "description": text}
    return {"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
            "description": text}


def _hook_request(hook: str, today: date | None) -> dict[str, Any]:
    """The request body schema of the service answering ``hook``."""
    return {
        "type": "object", "required": ["hook", "hookInstance", "context"],
        "properties": {
            "hook": {"const": hook},
            "hookInstance": {"type": "string", "minLength": 1},
            "fhirServer": {"type": "string", "minLength": 1},
            "fhirAuthorization": {"type": "object", "required": ["access_token"],
                                  "properties": {"access_token": {"type": "string"}}},
            "context": {"type": "object", "required": ["patientId"], "properties": {
                "patientId": {"type": "string", "minLength": 1},
                **{key: {"type": ["object", "array", "null"]}
                   for h, key in CONTEXT_ORDERS.items() if h == hook}}},
            "prefetch": {"type": ["object", "null"], "properties": {
                k: {"type": ["object", "null"]} for k in (*PREFETCH, *LEGACY_KEYS)}},
            "extension": {"type": "object", "properties": {EXTENSION: {
                "type": ["object", "null"], "properties": {
                    "on": _on(today),
                    "answers": {"type": ["object", "null"]},
                    "sites": {"type": "array", "items": {
                        "type": "object", "required": ["muscle"], "properties": {
                            "muscle": {"type": "string"},
                            "side": {"enum": [s.value for s in Side]}}}}}}}},
        },
        # with fhirAuthorization, fhirServer is required (cds-r-1)
        "dependentRequired": {"fhirAuthorization": ["fhirServer"]},
    }


def _example(service: Mapping[str, Any]) -> dict[str, Any]:
    """A complete request for ``service`` (every required prefetch key; answered with cards)."""
    prefetch: dict[str, Any] = dict.fromkeys(REQUIRED_PREFETCH)
    prefetch["patient"] = {"resourceType": "Patient", "id": "example", "gender": "female",
                           "birthDate": "1980-05-05"}
    return {"hook": service["hook"], "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "context": {"userId": "Practitioner/example", "patientId": "example"},
            "prefetch": prefetch}


def _service_paths(doc: dict[str, Any], service: Mapping[str, Any], *,
                   authenticated: bool, today: date | None) -> None:
    """Add the hook and feedback endpoints of one CDS service."""
    sid, hook = service["id"], service["hook"]
    name = "".join(part.capitalize() for part in hook.split("-"))
    security: list[dict[str, list[str]]] = [{"cdsClientJwt": []}] if authenticated else []
    doc["paths"][f"/cds-services/{sid}"] = {"post": {
        "summary": f"Call the {hook} service", "operationId": f"call{name}",
        "security": security,
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": _hook_request(hook, today), "example": _example(service)}}},
        "responses": {"200": {"description": "Cards", **_json("CardsResponse")},
                      **_errors(400, 401, 403, 404, 408, 412, 413, 503)},
    }}
    doc["paths"][f"/cds-services/{sid}/feedback"] = {"post": {
        "summary": f"Feedback on the {hook} service's cards",
        "operationId": f"feedback{name}", "security": security,
        "requestBody": {"required": True, **_json("FeedbackRequest")},
        "responses": {"200": {"description": "Stored", **_json("FeedbackResponse")},
                      **_errors(400, 401, 403, 404, 408, 413, 503)},
    }}


def openapi(base_url: str | None = None, *, authenticated: bool = True,
            today: date | None = None) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document of the service.

    Args:
        base_url: The service's public URL (``servers``); omitted when ``None``.
        authenticated: Hook and feedback calls need a CDS client JWT (``False`` describes a
            service made with ``insecure_no_auth``: no security requirement).
        today: The service's date: the one value the deprecated ``extension`` ``on`` may
            take (``None``: any date is described, with the rule in words).
    """
    coding = {"type": "object", "required": ["system", "code"],
              "properties": {"system": {"type": "string", "minLength": 1},
                             "code": {"type": "string", "minLength": 1},
                             "display": {"type": "string"}}}
    card = {
        "type": "object", "required": ["summary", "indicator", "source"],
        "properties": {
            "uuid": {"type": "string", "format": "uuid"},
            "summary": {"type": "string", "minLength": 1, "maxLength": 139},
            "detail": {"type": "string"},
            "indicator": {"enum": ["info", "warning", "critical"]},
            "source": {"type": "object", "required": ["label"], "properties": {
                "label": {"type": "string", "minLength": 1}, "url": {"type": "string"},
                "topic": {"$ref": _REF + "Coding"}}},
            "overrideReasons": {"type": "array", "items": {
                "allOf": [{"$ref": _REF + "Coding"}, {"required": ["display"]}]}},
            "extension": {"type": "object"},
        },
    }
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "dryneedle CDS Hooks 2.0 service", "version": __version__,
                 "description": "Dry-needling screening as CDS Hooks 2.0 services "
                 "(https://cds-hooks.hl7.org/2.0/). Hook and feedback calls need "
                 "`Authorization: Bearer <JWT>` signed by a trusted CDS client."},
        "paths": {
            "/cds-services": {"get": {
                "summary": "Discovery", "operationId": "discovery",
                "responses": {"200": {"description": "The CDS services", **_json("Discovery")}},
            }},
            "/openapi.json": {"get": {
                "summary": "This document", "operationId": "openapi",
                "responses": {"200": {"description": "OpenAPI 3.1",
                                      "content": {"application/json": {"schema": {
                                          "type": "object"}}}}},
            }},
        },
        "components": {
            "schemas": {
                "Coding": coding,
                "Discovery": {"type": "object", "required": ["services"], "properties": {
                    "services": {"type": "array", "items": {
                        "type": "object", "required": ["hook", "description", "id"],
                        "properties": {"hook": {"type": "string"}, "title": {"type": "string"},
                                       "description": {"type": "string"},
                                       "id": {"type": "string"},
                                       "prefetch": {"type": "object", "additionalProperties": {
                                           "type": "string"}}}}}}},
                "Card": card,
                "CardsResponse": {"type": "object", "required": ["cards"], "properties": {
                    "cards": {"type": "array", "items": {"$ref": _REF + "Card"}}}},
                "FeedbackRequest": {"type": "object", "required": ["feedback"], "properties": {
                    "feedback": {"type": "array", "minItems": 1, "maxItems": 100, "items": {
                        "type": "object", "required": ["card", "outcome", "outcomeTimestamp"],
                        # an overrideReason only on an overridden card (cds-fb-2)
                        "anyOf": [{"properties": {"outcome": {"const": "overridden"}}},
                                  {"not": {"required": ["overrideReason"]}}],
                        "properties": {
                            "card": {"type": "string", "format": "uuid"},
                            "outcome": {"enum": ["accepted", "overridden"]},
                            "acceptedSuggestions": {"type": "array", "items": {
                                "type": "object", "required": ["id"],
                                "properties": {"id": {"type": "string"}}}},
                            "overrideReason": {"type": "object", "anyOf": [  # cds-fb-3
                                {"required": ["reason"]}, {"required": ["userComment"]}],
                                "properties": {
                                "reason": {"$ref": _REF + "Coding"},
                                "userComment": {"type": "string", "maxLength": 4000}}},
                            "outcomeTimestamp": {"type": "string", "format": "date-time"},
                        }}}}},
                "FeedbackResponse": {"type": "object", "required": ["stored"], "properties": {
                    "stored": {"type": "integer", "minimum": 0}}},
                "OperationOutcome": {
                    "type": "object", "required": ["resourceType", "issue"], "properties": {
                        "resourceType": {"const": "OperationOutcome"},
                        "issue": {"type": "array", "minItems": 1, "items": {
                            "type": "object", "required": ["severity", "code"], "properties": {
                                "severity": {"enum": ["fatal", "error", "warning",
                                                      "information"]},
                                "code": {"type": "string"},
                                "diagnostics": {"type": "string"},
                                "expression": {"type": "array",
                                               "items": {"type": "string"}}}}}}},
            },
            "securitySchemes": {"cdsClientJwt": {"type": "http", "scheme": "bearer",
                                                 "bearerFormat": "JWT"}},
        },
    }
    for service in SERVICES:
        _service_paths(doc, service, authenticated=authenticated, today=today)
    if base_url is not None:
        doc["servers"] = [{"url": base_url}]
    return doc
