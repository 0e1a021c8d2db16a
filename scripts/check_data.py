"""Check every reference-data file shipped under ``src/dryneedle/**/data/``.

Each file is JSON (or TOML) that opens with a ``header`` (``description``, ``sources``,
``version``, ``date``: where the data came from, as python-stdnum's ``iban.dat`` says), then one
list of entries (and, optionally, side tables: objects that cite their own ``sources``).
Every entry must cite at least one source id registered in
``dryneedle.sources`` (in ``sources`` or another ``*sources`` key) -- only a record-format rule
may instead give its ``basis`` (the format contract it enforces) -- and ids must be unique.

Run it from the repository root::

    python scripts/check_data.py

It prints one line per file and exits 1 on the first file with problems (listing them all).
"""

from __future__ import annotations

import json
import sys
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA_FILES = sorted(
    p for p in (ROOT / "src" / "dryneedle").glob("**/data/*") if p.suffix in {".json", ".toml"}
)
HEADER_KEYS = {"version", "date", "sources", "description"}


def problems(path: Path, known_sources: set[str]) -> list[str]:
    """Return every problem of one data file (empty when it is sound)."""
    text = path.read_text(encoding="utf-8")
    doc: Any = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    found: list[str] = []
    about = doc.get("header") if isinstance(doc, dict) else None
    if not isinstance(about, dict):
        return ["no 'header'"]
    if missing := HEADER_KEYS - set(about):
        found.append(f"header lacks {sorted(missing)}")
    try:
        date.fromisoformat(str(about.get("date")))
    except ValueError:
        found.append("header.date is not an ISO date")
    found += [f"header cites unknown source {s!r}" for s in about.get("sources", ())
              if s not in known_sources]
    for key, block in doc.items():  # a side table (e.g. the anatomy's limbs) cites too
        if key != "header" and isinstance(block, dict):
            cited = block.get("sources")
            if not cited:
                found.append(f"{key}: cites no source")
            found += [f"{key}: unknown source {s!r}" for s in cited or ()
                      if s not in known_sources]
    lists = [k for k, v in doc.items() if k != "header" and isinstance(v, list)]
    if len(lists) != 1:
        return [*found, f"expected one list of entries, found {lists}"]
    seen: set[str] = set()
    for i, entry in enumerate(doc[lists[0]]):
        ident = next((entry[k] for k in ("id", "code", "term") if k in entry), None)
        where = f"{lists[0]}[{i}] ({ident!r})"
        key = f"{entry.get('system', '')}|{ident}|{entry.get('flag', '')}"
        if key in seen:
            found.append(f"{where}: repeated")
        seen.add(key)
        cited = [s for k, v in entry.items() if k.endswith("sources") for s in v]
        if not cited and not entry.get("basis"):
            # Only a format rule may go without a source, and it must say what it enforces.
            found.append(f"{where}: cites no source")
        found += [f"{where}: unknown source {s!r}" for s in cited if s not in known_sources]
    return found


def main() -> int:
    """Check every data file; return the exit status."""
    sys.path.insert(0, str(ROOT / "src"))
    from dryneedle.sources import SOURCES  # noqa: PLC0415 - after the path is set

    status = 0
    for path in DATA_FILES:
        rel = path.relative_to(ROOT)
        found = problems(path, set(SOURCES))
        print(f"{rel}: {'ok' if not found else f'{len(found)} problem(s)'}")
        for p in found:
            print(f"  {p}")
        status |= bool(found)
    if not DATA_FILES:
        print("no data files found")
        return 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
