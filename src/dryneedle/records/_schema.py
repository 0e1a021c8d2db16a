"""The JSON Schema (draft 2020-12) of record format v1, generated from the field specs.

Numbers carry the validator's bounds (spec §6, 1.1): an integer field holds a signed 64-bit
integer (JSON Schema counts ``1.0`` as an integer, as the validator does) and a number field a
finite double, so the schema and the validator agree on every record.

May import: :mod:`dryneedle.model`, :mod:`dryneedle.catalog`, :mod:`._fields` and :mod:`._json`.
"""

from __future__ import annotations

from typing import Any

from dryneedle import model
from dryneedle.catalog import CONDITIONS, MUSCLES
from dryneedle.records._fields import FORMAT, FieldSpec, field_specs
from dryneedle.records._json import INT_MAX, INT_MIN, MAX_DOUBLE

__all__ = ["json_schema"]


def _schema_of(cls: type, defs: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = {}
    required: list[str] = []
    for spec in field_specs(cls):
        props[spec.name] = _field_schema(spec, defs)
        if spec.required:
            required.append(spec.name)
    doc = (cls.__doc__ or "").strip().splitlines()[0]
    out: dict[str, Any] = {"type": "object", "description": doc, "properties": props}
    if required:
        out["required"] = required
    return out


def _field_schema(spec: FieldSpec, defs: dict[str, Any]) -> dict[str, Any]:
    s: dict[str, Any]
    if spec.kind == "bool":
        s = {"type": "boolean"}
    elif spec.kind == "str":
        s = {"type": "string", "minLength": 1}
    elif spec.kind == "int":
        low = INT_MIN if spec.minimum is None else max(INT_MIN, int(spec.minimum))
        s = {"type": "integer", "minimum": low, "maximum": INT_MAX}
    elif spec.kind == "float":
        s = {"type": "number", "minimum": -MAX_DOUBLE, "maximum": MAX_DOUBLE}
        if spec.minimum is not None:
            s["minimum"] = spec.minimum
    elif spec.kind == "date":
        s = {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
    elif spec.kind == "enum":
        s = {"type": "string", "enum": [m.value for m in spec.target]}
    elif spec.kind == "muscle":
        s = {"type": "string", "enum": list(MUSCLES)}
    elif spec.kind == "object":
        name = spec.target.__name__
        if name not in defs:
            defs[name] = {}
            defs[name] = _schema_of(spec.target, defs)
        s = {"$ref": f"#/$defs/{name}"}
    else:  # array
        if spec.target == "condition":
            items: dict[str, Any] = {"type": "string", "enum": list(CONDITIONS)}
        else:
            name = spec.target.__name__
            if name not in defs:
                defs[name] = {}
                defs[name] = _schema_of(spec.target, defs)
            items = {"$ref": f"#/$defs/{name}"}
        s = {"type": "array", "items": items}
    if not spec.required:
        s = {"anyOf": [s, {"type": "null"}]}
    return s


def json_schema() -> dict[str, Any]:
    """Return the JSON Schema (draft 2020-12) of record format v1, generated from the models.

    Unknown fields are allowed by the schema (the validator reports them as warnings).

    >>> from dryneedle.records import json_schema
    >>> json_schema()["properties"]["format"]
    {'const': 'dryneedle.session/1'}
    """
    defs: dict[str, Any] = {}
    root = _schema_of(model.SessionRecord, defs)
    root["properties"]["format"] = {"const": FORMAT}
    root["required"] = ["format", *root.get("required", [])]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://dryneedle.readthedocs.io/schema/session-1.json",
        "title": "dryneedle session record, format v1",
        **root,
        "$defs": dict(sorted(defs.items())),
    }
