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
from typing import Annotated, Any, Final, Literal

from dryneedle import model
from dryneedle.catalog import CONDITIONS, MUSCLES
from dryneedle.records._fields import field_specs
from dryneedle.records._json import INT_MAX, INT_MIN

__all__ = [
    "AVAILABLE",
    "DECODE_ERRORS",
    "ENV_SWITCH",
    "decode",
    "decoder",
    "no_repeated_key",
    "part_converter",
    "to_model",
]

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


_KEYS: dict[type, Any] = {}


def _key_mirror(cls: type) -> Any:
    """Return (building once) the key-counting Struct of a model class (see below).

    Every field defaults to ``UNSET`` (never encoded, so only the keys the text gave are
    written back); objects and arrays of objects are Structs again, booleans and integers
    decode as such, and every other value is kept as its exact text (``msgspec.Raw``).
    """
    if cls in _KEYS:
        return _KEYS[cls]
    fields: list[tuple[Any, ...]] = []
    for spec in field_specs(cls):
        t: Any
        if spec.kind == "object":
            t = _key_mirror(spec.target) | None
        elif spec.kind == "array" and spec.target != "condition":
            t = tuple[_key_mirror(spec.target), ...] | None  # type: ignore[misc]
        elif spec.kind == "bool":
            t = bool | None
        elif spec.kind == "int":
            t = int | None
        else:
            t = msgspec.Raw
        fields.append((spec.name, t, msgspec.UNSET))
    struct = msgspec.defstruct(
        f"{cls.__name__}Keys", fields, kw_only=True, forbid_unknown_fields=True, gc=False,
        module=__name__,
    )
    _KEYS[cls] = struct
    return struct


_WS: Final = b" \t\r\n"

if AVAILABLE:
    _key_decode = msgspec.json.Decoder(msgspec.defstruct(
        "SessionRecordKeys",
        [("format", msgspec.Raw, msgspec.UNSET), ("record_id", msgspec.Raw, msgspec.UNSET),
         ("patient", _key_mirror(model.Patient), msgspec.UNSET),
         ("session", _key_mirror(model.Session), msgspec.UNSET)],
        kw_only=True, forbid_unknown_fields=True, gc=False, module=__name__,
    )).decode
    _encode = msgspec.json.Encoder().encode


def no_repeated_key(text: str | bytes) -> bool:
    """``True`` proves that no object of a record text gives a key twice (an exact pre-test).

    For a text the accelerated decoder accepted (so every key is a field name). The text is
    decoded into key-counting mirrors, which keep one member per key (as every parser does)
    and write back, compactly, exactly the members they kept: each key as its field name
    (the shortest way to write it), booleans, integers and ``null`` in their only JSON
    spelling (``-0`` aside, which is shorter), every other value as its exact text. So the
    re-encoding is never longer than the text, and every member lost to a repeated key makes
    it strictly shorter (a member is at least ``"k":0``): equal lengths prove that no key
    repeats. With whitespace between the tokens, the same holds for the lengths without the
    four JSON whitespace bytes (a key or a boolean holds none; an exact value keeps its own).
    ``False`` means "cannot tell": the caller asks the slower pre-test. All in C: one decode,
    one encode, and a length comparison (two whitespace deletions only for spaced texts).
    """
    raw = text if text.__class__ is bytes else str(text).encode("utf-8", "surrogatepass")
    try:
        again = _encode(_key_decode(raw))
    except DECODE_ERRORS:  # pragma: no cover - the record decoder accepted this text
        return False
    if len(again) == len(raw):
        return True
    return len(again.translate(None, _WS)) == len(raw.translate(None, _WS))

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


def part_converter(
    classes: tuple[type, ...],
) -> tuple[Any, type[Exception], dict[type, Any]] | None:
    """Return ``(convert, error, mirrors)`` for converting decoded parts, or ``None``.

    ``convert(value, mirrors[cls])`` (``msgspec.convert``) returns the mirror of a decoded
    JSON object of model class ``cls`` when it is structurally clean, else raises ``error``.
    Used by the quick readable walkers of :mod:`._structure` (``None`` without msgspec).

    Args:
        classes: The model classes to mirror.
    """
    if not AVAILABLE:
        return None
    return msgspec.convert, msgspec.ValidationError, {cls: _mirror(cls) for cls in classes}


def to_model(wire: Any) -> model.SessionRecord:
    """Convert a mirror record into the attrs model."""
    converted: model.SessionRecord = msgspec.convert(
        wire, model.SessionRecord, from_attributes=True
    )
    return converted
