"""Record format v1: structuring, unstructuring, JSON Schema and streaming validation.

One **session record** (format ``dryneedle.session/1``) is one JSON object holding a patient and
one session; JSONL files hold one record per line. This package turns records into the model
(:mod:`dryneedle.model`) and back, and validates streams of them:

* :func:`validate_records` takes any iterable of mappings or JSON lines and yields exactly one
  :class:`RecordReport` per input, in order, with *every* structural, screening and protocol
  finding. It never stops early and never raises on bad data.
* :func:`structure_record` returns the model of one valid record, or raises
  :class:`RecordError` carrying all findings; :func:`unstructure_record` is its inverse.
* :data:`converter` is the library's one cattrs converter (ISO dates, enums by value), defined
  in :mod:`dryneedle.wire`.
* :func:`json_schema` is the JSON Schema of the format, generated from the models.

The input layer every subcommand reads through (:func:`expand_inputs`, :func:`open_input`,
:func:`iter_items`, :func:`read_items`), the ``--jobs`` pipeline (:func:`run_pipeline`) and the
walkers of one part (:func:`walk_record`, :func:`walk_part`) are public for the command line and
the recipes.

This package's public face re-exports the names of its private modules; like them, it may
import the model, reference data, findings, policy and rules layers (never fhir, service,
distributed or cli).

>>> from dryneedle.records import validate_records
>>> bad = {"format": "dryneedle.session/1", "record_id": "r-1",
...        "patient": {"patient_id": "p-1", "sex": "femme"}, "session": 7}
>>> report = next(validate_records([bad]))
>>> report.valid
False
>>> [(f.code, f.path) for f in report.findings if f.severity == "error"]
[('structure.enum', 'patient.sex'), ('structure.type', 'session')]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

# The package, lowest first (a module imports only those above it):
#   _fields     field specifications: how each model field appears on the wire
#   _duplicates duplicate keys: the exact pre-test and the detecting parse
#   _codegen    the source of the generated walkers (strict and readable)
#   _structure  structural rules, generated walkers, walk/structure/unstructure one record
#   _fast       optional msgspec mirrors: the accelerated structure check of JSON lines
#   _schema     the JSON Schema, generated from the field specifications
#   _json       the one JSON parser (loads) and its number rules; blank lines; text escaping
#   _documents  delimiting records in a byte stream: JSONL lines, JSON array elements
#   _input      the input layer: files, globs, compression, stdin, formats; iter_items
#   _validate   Validator, RecordReport, validate_records / validate_lines (adds the rules)
#   _pipeline   the chunked, optionally parallel pipeline behind ``dryneedle validate``
from dryneedle.records import _documents, _fast, _fields, _pipeline
from dryneedle.records._duplicates import repeats_a_key
from dryneedle.records._input import FORMATS as _FORMATS
from dryneedle.records._input import (
    InputError,
    Item,
    expand_inputs,
    input_format,
    input_size,
    iter_items,
    loads,
    open_input,
    read_items,
)
from dryneedle.records._json import JSONError, escape_text
from dryneedle.records._pipeline import ChunkResult, Summary, default_jobs
from dryneedle.records._schema import json_schema
from dryneedle.records._structure import (
    RecordError,
    structure_record,
    unstructure_record,
    walk_part,
    walk_record,
)
from dryneedle.records._validate import CHECKS as _CHECKS
from dryneedle.records._validate import (
    RecordReport,
    Validator,
    validate_lines,
    validate_records,
)

__all__ = [
    "CHECKS",
    "DEFAULT_MAX_RECORD_BYTES",
    "FAST_PATH",
    "FORMAT",
    "FORMATS",
    "BadInput",
    "ChunkResult",
    "InputError",
    "Item",
    "JSONError",
    "RecordError",
    "RecordReport",
    "Summary",
    "Validator",
    "converter",
    "default_jobs",
    "escape_text",
    "expand_inputs",
    "input_format",
    "input_size",
    "iter_items",
    "json_schema",
    "jsonl_line_record",
    "loads",
    "open_input",
    "read_items",
    "repeats_a_key",
    "run_pipeline",
    "structure_record",
    "unstructure_record",
    "validate_lines",
    "validate_records",
    "walk_part",
    "walk_record",
]

DEFAULT_MAX_RECORD_BYTES: Final = _documents.DEFAULT_MAX_RECORD_BYTES
"""Default ``--max-record-bytes``: a larger record is reported, not read (16 MiB)."""

jsonl_line_record = _documents.jsonl_line_record
BadInput = _documents.BadInput

run_pipeline = _pipeline.run

FORMATS: Final = _FORMATS
"""The input formats of ``--input-format``: ``jsonl`` (one record per line) and ``json`` (an
array of records or one document)."""

FORMAT: Final = _fields.FORMAT
"""The value of the ``format`` field of every record of format v1."""

CHECKS: Final = _CHECKS
"""The checks :func:`validate_records` can run, in pipeline order."""

FAST_PATH: Final = _fast.AVAILABLE
"""Whether JSON lines take the accelerated structure check (extra ``fast``: msgspec)."""

if TYPE_CHECKING:  # imported on first use (cattrs costs start-up time): see __getattr__
    from dryneedle.wire import converter as _converter

    converter: Final = _converter
    """The library's one cattrs converter, :data:`dryneedle.wire.converter` (re-exported here).

    It writes dates as ISO strings, enums by value and tuples as lists.

    >>> from datetime import date
    >>> from dryneedle.records import converter
    >>> from dryneedle.model import SiteFinding
    >>> converter.unstructure(SiteFinding(region="neck", side="left", kind="scar",
    ...                                   date=date(2026, 1, 2)))
    {'region': 'neck', 'side': 'left', 'kind': 'scar', 'date': '2026-01-02'}
    """



def __getattr__(name: str) -> Any:
    """:data:`converter`, imported on first use: ``validate`` never needs cattrs."""
    if name == "converter":
        from dryneedle.wire import converter as value  # noqa: PLC0415

        globals()["converter"] = value
        return value
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    """The module's names, :data:`converter` included before its first use."""
    return sorted({*globals(), "converter"})


# The public classes and functions are defined in the private modules but belong to this
# package: they are documented, pickled and shown in tracebacks as ``dryneedle.records.X``.
_DEFINED_HERE: tuple[Any, ...] = (
    BadInput,
    ChunkResult,
    InputError,
    Item,
    Summary,
    default_jobs,
    escape_text,
    expand_inputs,
    input_format,
    input_size,
    iter_items,
    open_input,
    read_items,
    repeats_a_key,
    run_pipeline,
    walk_part,
    walk_record,
    JSONError,
    jsonl_line_record,
    RecordError,
    RecordReport,
    Validator,
    json_schema,
    loads,
    structure_record,
    unstructure_record,
    validate_lines,
    validate_records,
)
for _obj in _DEFINED_HERE:
    _obj.__module__ = __name__
del _obj
