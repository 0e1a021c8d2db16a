"""Optional accelerated structure check for JSON lines (extra ``fast``: msgspec).

From the same field specifications as the pure-Python walkers (:mod:`._fields`),
this module generates msgspec ``Struct`` mirrors of the model classes -- same field names,
same enums, ISO dates, non-empty strings, numeric minimums, closed muscle and condition
vocabularies, *unknown fields forbidden*. A line that decodes into them is structurally clean
by the same definition the walker applies, so the clinical rules can run on the mirror objects
directly (they only read attributes). A line that does not decode -- malformed, wrong types,
unknown fields -- is handed to the walker, which reports every problem with its path. The
reports are identical either way (a differential property test guards this); only the speed
differs.

The mirrors are converted to the attrs model only when someone asks for
:attr:`dryneedle.records.RecordReport.record`.

Integer fields are bounded to signed 64 bits (the walker's range), so a clean decode means the
same thing on both paths. Setting the environment variable ``DRYNEEDLE_FAST=0`` before
dryneedle is imported turns the accelerated path off (the reports do not change; tests and CI
use it to compare both paths); in-process, :data:`AVAILABLE` may be set to ``False`` before a
:class:`~dryneedle.records.Validator` is made.

May import: :mod:`dryneedle.model`, :mod:`dryneedle.catalog`, :mod:`._fields` and
:mod:`._json` (and the optional msgspec).
"""

from __future__ import annotations

import os
from datetime import date
from typing import Annotated, Any, Literal

from dryneedle import model
from dryneedle.catalog import CONDITIONS, MUSCLES
from dryneedle.records._fields import field_specs
from dryneedle.records._json import INT_MAX, INT_MIN

__all__ = ["AVAILABLE", "DECODE_ERRORS", "ENV_SWITCH", "decode", "decoder", "to_model"]

ENV_SWITCH = "DRYNEEDLE_FAST"
"""Environment variable: ``0`` turns the accelerated path off (read once, at import)."""

try:
    if os.environ.get(ENV_SWITCH, "1") == "0":
        raise ImportError(ENV_SWITCH)
    import msgspec
except ImportError:  # pragma: no cover - exercised where the extra is not installed
    msgspec = None  # type: ignore[assignment]

AVAILABLE = msgspec is not None
"""Whether the accelerated path is available (msgspec installed, not switched off)."""

_MIRRORS: dict[type, Any] = {}


def _mirror(cls: type) -> Any:
    """Return (building once) the msgspec Struct mirroring a model class."""
    if cls in _MIRRORS:
        return _MIRRORS[cls]
    non_empty = Annotated[str, msgspec.Meta(min_length=1)]
    fields: list[tuple[Any, ...]] = []
    for spec in field_specs(cls):
        t: Any
        if spec.kind == "str":
            t = non_empty
        elif spec.kind == "bool":
            t = bool
        elif spec.kind == "int":
            low = INT_MIN if spec.minimum is None else max(INT_MIN, int(spec.minimum))
            t = Annotated[int, msgspec.Meta(ge=low, le=INT_MAX)]
        elif spec.kind == "float":
            t = float
        elif spec.kind == "date":
            t = date
        elif spec.kind == "enum":
            t = spec.target
        elif spec.kind == "muscle":
            t = Literal[tuple(MUSCLES)]
        elif spec.kind == "object":
            t = _mirror(spec.target)
        elif spec.target == "condition":
            t = tuple[Literal[tuple(CONDITIONS)], ...]  # type: ignore[misc]
        else:
            t = tuple[_mirror(spec.target), ...]  # type: ignore[misc]
        if spec.required:
            fields.append((spec.name, t))
        elif spec.kind == "object":
            default = _mirror(spec.target)()
            fields.append((spec.name, t, default))
        elif spec.kind == "array" and not spec.nullable:
            fields.append((spec.name, t, ()))
        else:
            fields.append((spec.name, t | None, None))
    struct = msgspec.defstruct(
        f"{cls.__name__}Wire",
        fields,
        kw_only=True,
        frozen=True,
        forbid_unknown_fields=True,
        gc=False,
        module=__name__,
    )
    _MIRRORS[cls] = struct
    return struct


if AVAILABLE:
    _RecordWire = _mirror(model.SessionRecord)
    # The format tag is a constant: a Literal makes a wrong tag a decode error.
    _RecordWire = msgspec.defstruct(
        "SessionRecordWire",
        [
            ("format", Literal["dryneedle.session/1"]),
            ("record_id", Annotated[str, msgspec.Meta(min_length=1)]),
            ("patient", _mirror(model.Patient)),
            ("session", _mirror(model.Session)),
        ],
        kw_only=True,
        frozen=True,
        forbid_unknown_fields=True,
        gc=False,
        module=__name__,
    )
    _decoder = msgspec.json.Decoder(_RecordWire)

DECODE_ERRORS: tuple[type[Exception], ...] = (
    (msgspec.ValidationError, msgspec.DecodeError) if AVAILABLE else ()
)
"""What :func:`decoder`'s function raises for a line that is not structurally clean."""


def decoder() -> Any:
    """Return the raw decode function (raises :data:`DECODE_ERRORS`), or ``None``."""
    return _decoder.decode if AVAILABLE else None


def decode(line: str | bytes) -> Any:
    """Decode a structurally clean record line into its mirror, or return ``None``.

    ``None`` means "not clean": the caller runs the walker, which says why.
    """
    try:
        return _decoder.decode(line)
    except DECODE_ERRORS:
        return None


def to_model(wire: Any) -> model.SessionRecord:
    """Convert a mirror record into the attrs model."""
    converted: model.SessionRecord = msgspec.convert(
        wire, model.SessionRecord, from_attributes=True
    )
    return converted
