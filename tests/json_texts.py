"""JSON texts for the structure tests: a record written with one key twice (duplicate keys).

Shared by the duplicate-key pre-test tests and the quick walk's (imported as a module of the
tests folder, as ``cds_conformance`` is): :func:`dumps` writes a JSON
value as ``json.dumps`` would (compact or with spaces) and can write a key again in one
object; :func:`objects` lists the objects in the order :func:`dumps` numbers them.
"""

from __future__ import annotations

import json
from typing import Any


def dumps(value: Any, *, spaced: bool = False, dup: tuple[int, str, Any] | None = None,
          raw_unicode: bool = False, counter: list[int] | None = None) -> str:
    """Serialise ``value``; ``dup = (n, key, value)`` writes ``key`` again in the n-th object.

    ``raw_unicode``: strings with their non-ASCII characters as UTF-8, not ``\\uXXXX``
    (but those holding a lone surrogate, which UTF-8 cannot write, escaped).
    """
    counter = [0] if counter is None else counter
    colon, comma = (": ", ", ") if spaced else (":", ",")
    if isinstance(value, dict):
        n = counter[0]
        counter[0] += 1
        members = [json.dumps(k) + colon + dumps(v, spaced=spaced, dup=dup,
                                                 raw_unicode=raw_unicode, counter=counter)
                   for k, v in value.items()]
        if dup is not None and dup[0] == n:
            members.append(json.dumps(dup[1]) + colon + json.dumps(dup[2]))
        return "{" + comma.join(members) + "}"
    if isinstance(value, list):
        return "[" + comma.join(dumps(v, spaced=spaced, dup=dup, raw_unicode=raw_unicode,
                                      counter=counter) for v in value) + "]"
    if raw_unicode and isinstance(value, str):
        return json.dumps(value, ensure_ascii="\ud800" in value)
    return json.dumps(value)


def objects(value: Any) -> list[dict[str, Any]]:
    """Every object of a JSON value, in the order :func:`dumps` numbers them."""
    if isinstance(value, dict):
        return [value] + [o for v in value.values() for o in objects(v)]
    if isinstance(value, list):
        return [o for v in value for o in objects(v)]
    return []
