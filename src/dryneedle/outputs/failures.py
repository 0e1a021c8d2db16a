"""The failure-cases table: one row per finding, as CSV or Parquet (peer: pandera).

Columns, in order: ``index``, ``line``, ``record_id``, ``code``, ``severity``, ``path``,
``message`` -- the report line contract's keys (SPEC §7), flattened. CSV uses the standard
library (RFC 4180 quoting, an empty cell for a missing ``record_id``); Parquet needs the
``parquet`` extra (pyarrow) and streams row groups, so memory does not grow with the input.

Read it back with ``pandas.read_csv("failures.csv")``, ``pandas.read_parquet(
"failures.parquet")`` or ``polars.read_parquet("failures.parquet")``.

May import: the standard library; pyarrow (optional, imported when a Parquet file is asked for).
"""

from __future__ import annotations

import csv
from typing import Any, Final

__all__ = ["FAILURE_COLUMNS", "FailureCasesWriter", "ParquetUnavailableError"]

FAILURE_COLUMNS: Final = ("index", "line", "record_id", "code", "severity", "path", "message")
"""The columns of the failure-cases table, in order."""

_BATCH: Final = 50_000


class ParquetUnavailableError(RuntimeError):
    """A Parquet file was asked for but pyarrow (the ``parquet`` extra) is not installed."""


class FailureCasesWriter:
    """Write one row per finding to ``path``: Parquet when it ends with ``.parquet``, else CSV.

    The file is created when the writer is (so an unwritable path fails before a run).

    Args:
        path: The output file.

    Raises:
        ParquetUnavailableError: For a ``.parquet`` path without pyarrow.
        OSError: When the file cannot be created.

    >>> import tempfile, os
    >>> from dryneedle.outputs import FailureCasesWriter
    >>> path = os.path.join(tempfile.mkdtemp(), "failures.csv")
    >>> w = FailureCasesWriter(path)
    >>> w.write({"index": 0, "line": 1, "record_id": None, "valid": False, "decision": None,
    ...          "findings": [{"code": "structure.json", "severity": "error", "path": "",
    ...                        "message": "not valid JSON", "sources": []}]})
    >>> w.close()
    >>> with open(path, encoding="utf-8") as f:
    ...     print(f.read(), end="")
    index,line,record_id,code,severity,path,message
    0,1,,structure.json,error,,not valid JSON
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.rows = 0
        self._parquet = path.lower().endswith(".parquet")
        self._batch: dict[str, list[Any]] = {c: [] for c in FAILURE_COLUMNS}
        if self._parquet:
            try:
                import pyarrow as pa  # noqa: PLC0415
                import pyarrow.parquet as pq  # noqa: PLC0415
            except ImportError as exc:
                msg = ("writing Parquet needs pyarrow: pip install 'dryneedle[parquet]' "
                       "(or give a .csv file)")
                raise ParquetUnavailableError(msg) from exc
            self._pa = pa
            self._schema = pa.schema([
                ("index", pa.int64()), ("line", pa.int64()), ("record_id", pa.string()),
                ("code", pa.string()), ("severity", pa.string()), ("path", pa.string()),
                ("message", pa.string()),
            ])
            self._pq_writer = pq.ParquetWriter(path, self._schema)
        else:
            self._file = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115
            self._csv = csv.writer(self._file)
            self._csv.writerow(FAILURE_COLUMNS)

    def write(self, report: dict[str, Any]) -> None:
        """Add a row for each finding of one report (JSON shape)."""
        for f in report["findings"]:
            row = (report["index"], report["line"], report["record_id"], f["code"],
                   f["severity"], f["path"], f["message"])
            self.rows += 1
            if self._parquet:
                for column, value in zip(FAILURE_COLUMNS, row, strict=True):
                    self._batch[column].append(_text(value))
                if len(self._batch["index"]) >= _BATCH:
                    self._flush()
            else:
                self._csv.writerow(["" if v is None else _text(v) for v in row])

    def _flush(self) -> None:
        if self._batch["index"]:
            table = self._pa.Table.from_pydict(self._batch, schema=self._schema)
            self._pq_writer.write_table(table)
            self._batch = {c: [] for c in FAILURE_COLUMNS}

    def close(self) -> None:
        """Finish and close the file."""
        if self._parquet:
            self._flush()
            self._pq_writer.close()
        else:
            self._file.close()


def _text(value: Any) -> Any:
    r"""Strings UTF-8 can encode (a lone surrogate from the input becomes ``\udxxx``)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value

