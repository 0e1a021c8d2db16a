"""Field specifications of record format v1: how each model field appears on the wire.

Derived once from the attrs type annotations of :mod:`dryneedle.model`, these specifications
are the single description of the format that the walkers (:mod:`._structure`), the msgspec
mirrors (:mod:`._fast`) and the JSON Schema (:mod:`._schema`) are all generated from, so the
three cannot drift apart.

May import: :mod:`dryneedle.model` (and attrs). Nothing else of the package.
"""

from __future__ import annotations

import enum
import functools
import types
import typing
from collections.abc import Mapping
from datetime import date
from typing import Any, Final

import attrs

from dryneedle import model

__all__ = ["FORMAT", "FieldSpec", "field_specs", "kind_of"]

FORMAT: Final = "dryneedle.session/1"
"""The value of the ``format`` field of every record of format v1."""


@attrs.frozen(kw_only=True)
class FieldSpec:
    """How one field of a model class appears on the wire.

    Attributes:
        name: Field name (same in the model and in JSON).
        kind: ``str``, ``int``, ``float``, ``bool``, ``date``, ``enum``, ``muscle``,
            ``condition``, ``object`` or ``array``.
        required: Whether the field must be present and non-null.
        target: Enum class, nested model class, or item kind of an array.
        minimum: Smallest allowed value of a number, if any (inclusive).
        nullable: Whether ``None`` is a value of the field (for an array: unknown, as
            opposed to ``[]``, "looked, none").
    """

    name: str
    kind: str
    required: bool
    target: Any = None
    minimum: float | None = None
    nullable: bool = False


# Structural bounds (not clinical limits: those live in the Policy).
_MINIMUMS: Mapping[tuple[type, str], float] = {
    (model.Session, "number"): 1,
    (model.PostSteps, "needles_removed"): 0,
}

# Fields whose string values come from a catalog rather than an enum.
_CATALOG_FIELDS: Mapping[tuple[type, str], str] = {
    (model.Insertion, "muscle"): "muscle",
}


def kind_of(tp: Any) -> tuple[str, Any, bool]:
    """Return ``(kind, target, nullable)`` for a resolved type annotation."""
    nullable = False
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        nullable = len(args) != len(typing.get_args(tp))
        (tp,) = args
        origin = typing.get_origin(tp)
    if origin is tuple:
        item = typing.get_args(tp)[0]
        if attrs.has(item):
            return "array", item, nullable
        return "array", "condition", nullable
    if tp is bool:
        return "bool", None, nullable
    if tp is int:
        return "int", None, nullable
    if tp is float:
        return "float", None, nullable
    if tp is str:
        return "str", None, nullable
    if tp is date:
        return "date", None, nullable
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "enum", tp, nullable
    if attrs.has(tp):
        return "object", tp, nullable
    msg = f"unsupported field type {tp!r}"  # pragma: no cover - guards model edits
    raise TypeError(msg)


@functools.cache
def field_specs(cls: type) -> tuple[FieldSpec, ...]:
    """Return the wire specification of every field of a model class, in declaration order."""
    hints = typing.get_type_hints(cls)
    specs = []
    for a in attrs.fields(cls):
        kind, target, nullable = kind_of(hints[a.name])
        if (cls, a.name) in _CATALOG_FIELDS:
            kind = _CATALOG_FIELDS[cls, a.name]
        required = a.default is attrs.NOTHING and not nullable
        minimum = _MINIMUMS.get((cls, a.name))
        specs.append(
            FieldSpec(
                name=a.name, kind=kind, required=required, target=target, minimum=minimum,
                nullable=nullable,
            )
        )
    return tuple(specs)

