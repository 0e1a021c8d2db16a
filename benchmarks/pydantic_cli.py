"""The fair peer of ``dryneedle validate FILE > reports.jsonl``: a plain pydantic v2 script.

Usage::

    python benchmarks/pydantic_cli.py FILE > reports.jsonl

Reads a JSONL file line by line, validates each non-blank line with the strict shape-only
pydantic v2 model of record format v1 (:func:`peers.pydantic_model`, the same model
``run.py`` times), and writes one JSON report per record with orjson::

    {"index":0,"line":1,"valid":false,"errors":[{"path":"session.insertions.0.depth_mm",
     "type":"greater_than","message":"Input should be greater than 0"}]}

Every error carries its dotted path (``loc`` joined with dots), its type and its message, as a
shape-only user script would write them. It checks no clinical rule. Used by
``cli_vs_pydantic.py``, which times it against the dryneedle CLI on the same file.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    """Validate the file named by ``argv[0]``; write the reports to stdout; return 0 or 1."""
    import orjson  # noqa: PLC0415
    from pydantic import ValidationError  # noqa: PLC0415

    sys.path.insert(0, str(HERE))
    from peers import pydantic_model  # noqa: PLC0415

    validate = pydantic_model().model_validate_json
    dumps = orjson.dumps
    newline = orjson.OPT_APPEND_NEWLINE
    out = sys.stdout.buffer
    write = out.write
    index = invalid = 0
    with open(argv[0], "rb") as f:
        for n, raw in enumerate(f, start=1):
            line = raw.strip(b" \t\r\n")
            if not line:
                continue
            try:
                validate(line)
                errors: list[dict[str, str]] = []
            except ValidationError as exc:
                invalid += 1
                errors = [
                    {"path": ".".join(str(p) for p in e["loc"]), "type": e["type"],
                     "message": e["msg"]}
                    for e in exc.errors(include_url=False, include_context=False,
                                        include_input=False)
                ]
            write(dumps({"index": index, "line": n, "valid": not errors, "errors": errors},
                        option=newline))
            index += 1
    out.flush()
    sys.stderr.write(f"{index} records: {index - invalid} valid, {invalid} invalid\n")
    return 1 if invalid else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
