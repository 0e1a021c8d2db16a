"""Check every reference-data file shipped under ``src/dryneedle/**/data/``.

Each file is JSON that opens with an ``about`` header (``name``, ``version``, ``date``,
``sources``, ``description``: where the data came from, as python-stdnum's ``iban.dat`` says),
then one list of entries. Every entry must cite at least one source id registered in
``dryneedle.sources`` (in ``sources`` or another ``*sources`` key), and ids must be unique.

Run it from the repository root::

    python scripts/check_data.py

It prints one line per file and exits 1 on the first file with problems (listing them all).
"""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA_FILES = sorted((ROOT / "src" / "dryneedle").glob("**/data/*.json"))
ABOUT_KEYS = {"name", "version", "date", "sources", "description"}


def problems(path: Path, known_sources: set[str]) -> list[str]:
    """Return every problem of one data file (empty when it is sound)."""
    doc: Any = json.loads(path.read_text(encoding="utf-8"))
    found: list[str] = []
    about = doc.get("about") if isinstance(doc, dict) else None
    if not isinstance(about, dict):
        return ["no 'about' header"]
    if missing := ABOUT_KEYS - set(about):
        found.append(f"about lacks {sorted(missing)}")
    try:
        date.fromisoformat(str(about.get("date")))
    except ValueError:
        found.append("about.date is not an ISO date")
    found += [f"about cites unknown source {s!r}" for s in about.get("sources", ())
              if s not in known_sources]
    lists = [k for k, v in doc.items() if k != "about" and isinstance(v, list)]
    if len(lists) != 1:
        return [*found, f"expected one list of entries, found {lists}"]
    seen: set[str] = set()
    for i, entry in enumerate(doc[lists[0]]):
        where = f"{lists[0]}[{i}] ({entry.get('id', entry.get('code'))!r})"
        key = f"{entry.get('system', '')}|{entry.get('id', entry.get('code'))}"
        if key in seen:
            found.append(f"{where}: repeated")
        seen.add(key)
        cited = [s for k, v in entry.items() if k.endswith("sources") for s in v]
        if not cited:
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
