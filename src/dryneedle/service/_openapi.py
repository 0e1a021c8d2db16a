"""The OpenAPI 3.1 description of the service (served at ``/openapi.json``).

What it is for: :func:`openapi` returns the document: discovery, the four hook endpoints, the
feedback endpoints and their request / response shapes (``cds-hooks-2.0``), every error as a
FHIR ``OperationOutcome``. Tools such as schemathesis test the service against it.

May import: the standard library, :mod:`dryneedle._version` and, in this package, :mod:`._hooks`.
"""

from __future__ import annotations

from typing import Any

from dryneedle._version import __version__
from dryneedle.service._hooks import EXTENSION, PREFETCH, SERVICES

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


def openapi(base_url: str | None = None) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document of the service.

    Args:
        base_url: The service's public URL (``servers``); omitted when ``None``.
    """
    ids = [s["id"] for s in SERVICES]
    service_id = {"name": "service_id", "in": "path", "required": True,
                  "schema": {"type": "string", "enum": ids}}
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
            "/cds-services/{service_id}": {"post": {
                "summary": "Call a CDS service", "operationId": "callService",
                "parameters": [service_id],
                "requestBody": {"required": True, **_json("HookRequest")},
                "responses": {"200": {"description": "Cards", **_json("CardsResponse")},
                              **_errors(400, 401, 403, 404, 408, 412, 413, 503)},
            }},
            "/cds-services/{service_id}/feedback": {"post": {
                "summary": "Feedback on cards", "operationId": "feedback",
                "parameters": [service_id],
                "requestBody": {"required": True, **_json("FeedbackRequest")},
                "responses": {"200": {"description": "Stored", **_json("FeedbackResponse")},
                              **_errors(400, 401, 403, 404, 408, 413, 503)},
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
                "HookRequest": {
                    "type": "object", "required": ["hook", "hookInstance", "context"],
                    "properties": {
                        "hook": {"enum": sorted({s["hook"] for s in SERVICES})},
                        "hookInstance": {"type": "string", "minLength": 1},
                        "fhirServer": {"type": "string"},
                        "fhirAuthorization": {"type": "object", "required": ["access_token"],
                                              "properties": {"access_token": {
                                                  "type": "string"}}},
                        "context": {"type": "object", "required": ["patientId"],
                                    "properties": {"patientId": {"type": "string",
                                                                 "minLength": 1}}},
                        "prefetch": {"type": "object", "properties": {
                            k: {"type": ["object", "null"]} for k in PREFETCH}},
                        "extension": {"type": "object", "properties": {
                            EXTENSION: {"type": "object"}}},
                    },
                },
                "Card": card,
                "CardsResponse": {"type": "object", "required": ["cards"], "properties": {
                    "cards": {"type": "array", "items": {"$ref": _REF + "Card"}}}},
                "FeedbackRequest": {"type": "object", "required": ["feedback"], "properties": {
                    "feedback": {"type": "array", "minItems": 1, "maxItems": 100, "items": {
                        "type": "object", "required": ["card", "outcome", "outcomeTimestamp"],
                        "properties": {
                            "card": {"type": "string", "format": "uuid"},
                            "outcome": {"enum": ["accepted", "overridden"]},
                            "acceptedSuggestions": {"type": "array", "items": {
                                "type": "object", "required": ["id"],
                                "properties": {"id": {"type": "string"}}}},
                            "overrideReason": {"type": "object", "properties": {
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
    for path in ("/cds-services/{service_id}", "/cds-services/{service_id}/feedback"):
        doc["paths"][path]["post"]["security"] = [{"cdsClientJwt": []}]
    if base_url is not None:
        doc["servers"] = [{"url": base_url}]
    return doc
