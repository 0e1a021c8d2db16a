"""Input files shared by the tests of the distributed recipes (Dask and Spark).

Generated records (``examples/generate.py``: realistic patients whose courses of sessions are
interleaved, so each patient's sessions span partitions and files) split into three JSONL
files, the middle one with the lines that test how lines are read: blank and whitespace-only
lines, CRLF, invalid UTF-8, a lone CR inside a line, non-objects, truncated JSON, lines of
``\v`` / ``\f`` (not JSON whitespace), and the last file opens with a UTF-8 BOM. The
reference is always the command line on the same files (``cli_output``).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SESSIONS = ROOT / "examples" / "sessions.jsonl"

ODD_LINES = [
    b"",
    b"   \t",
    b'{"format": "dryneedle.session/1", "record_id": "crlf"}\r',
    b'{"format": "dryneedle.session/1", "record_id": "bad-\xff-utf8"}',
    b'{"format": "dryneedle.session/1",\r"record_id": "lone-cr"}',
    b"[]",
    b'{"format": "dryneedle.session/1", "record_id": ',
    b"null",
    b"\v",  # not JSON whitespace: a record (one bad report), as the input layer reads it
    b"\x0c  ",
]


def _generator() -> object:
    spec = importlib.util.spec_from_file_location("generate", ROOT / "examples" / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("generate", module)
    spec.loader.exec_module(module)
    return module


def generated_files(folder: Path, records: int = 1200, seed: int = 11) -> list[Path]:
    """Write ``records`` generated records as three JSONL files (the middle one odd)."""
    gen = _generator()
    lines = [x.encode("utf-8") for x in gen.generate_lines(records, seed=seed)]  # type: ignore[attr-defined]
    third = len(lines) // 3
    chunks = [
        lines[:third],
        [*lines[third:third + 40], *ODD_LINES, *lines[third + 40:2 * third]],
        lines[2 * third:],
    ]
    paths = []
    for i, chunk in enumerate(chunks):
        path = folder / f"gen-{i}.jsonl"
        bom = b"\xef\xbb\xbf" if i == 2 else b""  # the last file opens with a UTF-8 BOM
        path.write_bytes(bom + b"\n".join(chunk) + b"\n")
        paths.append(path)
    return paths


def cli_output(paths: Sequence[Path | str], *args: str) -> bytes:
    """Standard output of ``python -m dryneedle validate PATHS --quiet ARGS``."""
    proc = subprocess.run(
        [sys.executable, "-m", "dryneedle", "validate", *map(str, paths), "--quiet", *args],
        capture_output=True, check=False, timeout=300,
    )
    assert proc.returncode == 1, proc.stderr  # the inputs hold invalid records
    return proc.stdout
