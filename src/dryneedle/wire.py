"""The one cattrs converter of record format v1: the model as JSON-ready data and back.

Every module that turns model objects into plain data (records, aftercare, FHIR, the test
strategies) uses this converter, so they all write dates as ISO strings and enums by value.
It sits at the model layer: it may import only :mod:`dryneedle.model` (and attrs/cattrs).
:mod:`dryneedle.records` re-exports it as ``converter``.
"""

from __future__ import annotations

import enum
from datetime import date
from typing import Any, Final

import cattrs

from dryneedle import model

__all__ = ["converter"]


def _enum_value(member: enum.Enum) -> Any:
    return member.value


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter()
    # Enums by value, as plain ``str``: StrEnum members are ``str`` subclasses, which cattrs
    # would pass through as-is, so every model enum is registered by class.
    for name in dir(model):
        obj = getattr(model, name)
        if isinstance(obj, type) and issubclass(obj, enum.Enum):
            conv.register_unstructure_hook(obj, _enum_value)
    conv.register_unstructure_hook(date, date.isoformat)
    conv.register_structure_hook(date, lambda v, _: date.fromisoformat(v))
    return conv


converter: Final = _make_converter()
"""The one cattrs converter of record format v1 (the library's only converter).

It writes dates as ISO strings, enums by value and tuples as lists, and structures them back.

>>> from datetime import date
>>> from dryneedle.wire import converter
>>> from dryneedle.model import SiteFinding
>>> converter.unstructure(SiteFinding(region="neck", side="left", kind="scar",
...                                   date=date(2026, 1, 2)))
{'region': 'neck', 'side': 'left', 'kind': 'scar', 'date': '2026-01-02'}
"""
