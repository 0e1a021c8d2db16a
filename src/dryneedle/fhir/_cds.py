"""CDS Hooks 2.0 cards: a screening result as the card a clinician sees in the EHR.

What it is for: :func:`cds_cards` (one card per decision: a summary under 140 characters, an
indicator, a Markdown detail naming the most serious findings (the rest counted), the FHIR
resources behind them and their sources, override reasons, a deterministic uuid) and
:func:`cds_response` (the response body).

May import: the standard library (and the optional orjson), :mod:`dryneedle.findings`,
:mod:`dryneedle.screening` (the result type), :mod:`dryneedle.sources` and, in this package,
:mod:`._outbound` (:func:`~._outbound.rule_title`), :mod:`._provenance` and
:mod:`._terminology`.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from dryneedle.fhir._outbound import rule_title
from dryneedle.fhir._provenance import Action, FhirPatientInputs, Provenance
from dryneedle.fhir._terminology import BASE_URL, SYSTEMS
from dryneedle.findings import Decision, Effect, Finding, Severity, all_rules
from dryneedle.screening import ScreeningResult
from dryneedle.sources import SOURCES, Source

__all__ = ["OVERRIDE_REASONS", "cds_cards", "cds_response", "rank"]

_UUID_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, BASE_URL)
_UUID_JSON: Final = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
"""``json.dumps(..., sort_keys=True, separators=(",", ":"))``, made once: the uuid's text."""
_NAMESPACE_BYTES: Final = _UUID_NAMESPACE.bytes
_GIL_CHUNK: Final = 2_000
"""Bytes hashed per call of ``update`` in :func:`_uuid5` (under hashlib's 2 048)."""
_ESCAPE: Final = "dryneedle.json-ascii"


def _json_ascii(exc: UnicodeError) -> tuple[str, int]:
    r"""Codec error handler: what ASCII cannot encode, as ``json.dumps`` escapes it.

    ``\uXXXX`` in lower-case hex, a character beyond the BMP as its UTF-16 surrogate pair
    (``ensure_ascii``).
    """
    if not isinstance(exc, UnicodeEncodeError):  # pragma: no cover - only encoding uses it
        raise exc
    out = []
    for char in exc.object[exc.start:exc.end]:
        n = ord(char)
        if n > 0xFFFF:
            n -= 0x10000
            out.append(f"\\u{0xD800 | (n >> 10):04x}\\u{0xDC00 | (n & 0x3FF):04x}")
        else:
            out.append(f"\\u{n:04x}")
    return "".join(out), exc.end


codecs.register_error(_ESCAPE, _json_ascii)

_dumps: Callable[..., bytes] | None = None
_SORT_KEYS = 0
try:  # extra "fast": the uuid's text ~10x faster, the same bytes (see _uuid_text)
    import orjson
except ImportError:  # pragma: no cover - exercised where the extra is not installed
    pass
else:
    _dumps = orjson.dumps
    _SORT_KEYS = orjson.OPT_SORT_KEYS


_CARD_CHARS: Final = (("\u00d7", "\\u00d7"), ("\u2026", "\\u2026"))
"""The non-ASCII characters of a card's own text (U+00D7 in a count, U+2026 ending a
shortened label), with their ``ensure_ascii`` escapes."""


def _escape_non_ascii(raw: bytes) -> bytes:
    r"""UTF-8 JSON text with every non-ASCII character escaped as ``ensure_ascii`` does.

    The card's own characters (:data:`_CARD_CHARS`) are replaced in the text first: the
    codec error handler costs an exception and a Python call per run of such characters
    (~1.5 µs each, more than the two replacements); any other character (from the FHIR data)
    still goes through it.
    """
    text = raw.decode("utf-8")
    for char, escaped in _CARD_CHARS:
        text = text.replace(char, escaped)
    return text.encode("ascii", _ESCAPE)


def _uuid_text(value: list[Any]) -> bytes:
    r"""``_UUID_JSON.encode(value)`` as (ASCII) bytes, for JSON objects, arrays and strings.

    With orjson installed: its compact, key-sorted text differs from ``json.dumps`` only in
    writing non-ASCII characters as UTF-8 and DEL (U+007F) as itself, where ``ensure_ascii``
    escapes both as ``\uXXXX`` (control characters, quotes and backslashes are escaped
    alike; keys sort alike, UTF-8 order being code-point order): both are escaped after. What
    orjson refuses (a lone surrogate) goes to ``json``. Numbers are not written alike
    (floats), so the value holds none: a card is strings only.
    """
    if _dumps is not None:
        try:
            raw = _dumps(value, option=_SORT_KEYS)
        except TypeError:  # orjson.JSONEncodeError: a lone surrogate
            pass
        else:
            if not raw.isascii():
                raw = _escape_non_ascii(raw)
            return raw.replace(b"\x7f", b"\\u007f") if b"\x7f" in raw else raw
    return _UUID_JSON.encode(value).encode("ascii")


def _uuid5(name: bytes) -> str:
    """``str(uuid.uuid5(_UUID_NAMESPACE, name))`` for an ASCII ``name``, without the UUID object.

    The SHA-1 of namespace and name, its first 16 bytes with the version (5) and the RFC 4122
    variant set, written 8-4-4-4-12 in lower-case hex. The name (a card's text, often over
    2 kB) is hashed in pieces under :data:`_GIL_CHUNK` bytes: hashlib lets go of the
    interpreter lock for 2 048 bytes or more, and in the service getting it back from the
    event loop's thread costs far more than the microseconds of hashing (the digest is the
    same).
    """
    sha = hashlib.sha1(_NAMESPACE_BYTES, usedforsecurity=False)
    view = memoryview(name)
    for start in range(0, len(view), _GIL_CHUNK):
        sha.update(view[start:start + _GIL_CHUNK])
    digest = bytearray(sha.digest())
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest[:16].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
_INDICATOR: Final[Mapping[Decision, str]] = {
    Decision.NOT_ELIGIBLE: "critical",
    Decision.NEEDS_REVIEW: "warning",
    Decision.ELIGIBLE_WITH_PRECAUTIONS: "warning",
    Decision.ELIGIBLE: "info",
}
_DECISION_LABEL: Final[Mapping[Decision, str]] = {
    d: d.value.replace("_", " ") for d in Decision
}
OVERRIDE_REASONS: Final[tuple[tuple[str, str, str | None], ...]] = (
    ("data-outdated", "Patient data shown is incorrect or outdated", None),
    ("answers-confirmed", "Missing answers were confirmed with the patient", None),
    ("clinician-judgement", "Clinician judgement: benefit outweighs the risk",
     "risk-benefit-ratio"),
    ("no-needling-planned", "No dry needling is planned", "cds-not-applicable"),
)
"""dryneedle's override reasons (code system ``SYSTEMS["override-reason"]``): ``(code, display,
aligned)``. CDS Hooks 2.0 prescribes no override reasons (``cds-hooks-2.0``); ``aligned`` is the
code of the CDS Hooks 3.0 ballot's suggested categories
(``http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes``, STU, HL7/cds-hooks
3.0.0-ballot) with the same meaning, or ``None`` where that set has none."""
_SUMMARY_MAX: Final = 139  # CDS Hooks: summary < 140 characters
_DOCS_URL: Final = "https://dryneedle.readthedocs.io/"


def _label(f: Finding) -> str:
    if f.code == "screening.unknown_answer":
        return f.path.rsplit(".", 1)[-1].replace("_", " ") + " unknown"
    title = rule_title(f.code)
    if title is None:
        return f.code
    return title[0].lower() + title[1:]


_WANTED: Final[Mapping[Decision, tuple[Severity, ...]]] = {
    Decision.NOT_ELIGIBLE: (Severity.ERROR,),
    Decision.NEEDS_REVIEW: (Severity.ERROR, Severity.WARNING),
    Decision.ELIGIBLE_WITH_PRECAUTIONS: (Severity.ERROR, Severity.WARNING),
    Decision.ELIGIBLE: (Severity.ERROR, Severity.WARNING, Severity.INFO),
}
"""The severities a card's summary names, by decision."""


def _summary(result: ScreeningResult) -> str:
    head = f"Dry needling: {_DECISION_LABEL[result.decision]}"
    wanted = _WANTED[result.decision]
    if result.decision is Decision.NEEDS_REVIEW and result.missing:
        n = len(result.missing)
        head += f", {n} answer{'s' if n != 1 else ''} unknown"
        labels = [_label(f) for f in result.findings
                  if f.severity in wanted and f.code != "screening.unknown_answer"]
    else:
        labels = [_label(f) for f in result.findings if f.severity in wanted]
    labels = list(dict.fromkeys(labels))
    for keep in range(len(labels), -1, -1):
        shown = labels[:keep]
        rest = len(labels) - keep
        inner = ", ".join(shown) + (f" +{rest} more" if rest and shown else "")
        if not shown and rest:
            inner = f"{rest} finding{'s' if rest != 1 else ''}"
        text = f"{head} ({inner})" if inner else head
        if len(text) <= _SUMMARY_MAX:
            return text
    return head[:_SUMMARY_MAX]  # pragma: no cover - the head alone is always short


def _md(text: str) -> str:
    return text.replace("`", "'")


def _resource_label(label: str) -> str:
    # Never print a patient identifier in a message: the Patient resource is named by type.
    return "Patient" if label.startswith("Patient/") or "/Patient/" in label else label


_UNKNOWN: Final = "screening.unknown_answer"
_EFFECTS: Final[Mapping[str, Effect | None]] = {r.id: r.effect for r in all_rules()}
_LEAD_SOURCES: Final = frozenset({"za-bn121", "munoz-2022", "apta-2013", "kalichman-2010"})
"""Primary clinical sources a card may lead with (``SOURCES.md`` grade P, clinical guidance or
peer-reviewed clinical literature: never the secondary ``seed``, a terminology or a
standard)."""
_LABEL_MAX: Final = 80


def rank(finding: Finding) -> int:
    """Return the display rank of a finding: lower is more important (shown first).

    Exclusions (errors) come first, then the answers and findings that need review, then
    precautions (other warnings), then information -- the order in which a clinician must act,
    as jsonschema's ``best_match`` puts the most relevant error first.
    """
    if finding.severity == Severity.ERROR:
        return 0
    if finding.code == _UNKNOWN or _EFFECTS.get(finding.code) is Effect.REVIEW:
        return 1
    return 2 if finding.severity == Severity.WARNING else 3


def _ranked(findings: Sequence[Finding]) -> list[Finding]:
    return sorted(findings, key=rank)  # stable: rule order within a rank


_Trails = Mapping[str, Sequence[Provenance]]
"""The provenance by path (:meth:`FhirPatientInputs.provenance_for` of every path at once)."""


def _trails(inputs: FhirPatientInputs | None) -> _Trails | None:
    if inputs is None:
        return None
    by_path: dict[str, list[Provenance]] = {}
    for p in inputs.provenance:
        by_path.setdefault(p.path, []).append(p)
    return by_path


_UNUSABLE: Final = (Action.CONFLICT, Action.IGNORED)


def _trail(f: Finding, trails: _Trails | None) -> str:
    if trails is None:
        return ""
    out = ""
    trail = trails.get(f.path, ())
    if not trail:
        return out
    used: list[Provenance] = []
    unusable: list[Provenance] = []
    unread: list[Provenance] = []
    superseded: list[Provenance] = []
    for p in trail:  # one pass, each list in trail order
        action = p.action
        if action is Action.USED:
            used.append(p)
        elif action in _UNUSABLE:
            unusable.append(p)
        elif action is Action.UNREAD:
            # Evidence that makes the answer unknown: named, so the clinician checks it
            # (unclassified medications have a line of their own on the card).
            if p.reason != "unclassified-medication":
                unread.append(p)
        elif action is Action.SUPERSEDED:
            superseded.append(p)
    if used:
        out += " From: " + "; ".join(
            _md(_resource_label(p.resource)) + (f" (`{_md(p.code)}`)" if p.code else "")
            for p in used
        ) + "."
    if unusable:
        out += " Not usable: " + "; ".join(
            f"{_md(_resource_label(p.resource))} ({p.reason})" for p in unusable
        ) + "."
    if unread:
        out += " Unread: " + "; ".join(
            f"{_md(_resource_label(p.resource))} ({p.reason})" for p in unread
        ) + "."
    if superseded:
        out += " Superseded: " + "; ".join(
            f"{_md(_resource_label(p.resource))} {json.dumps(p.value)} ({p.reason})"
            for p in superseded
        ) + "."
    return out


_SHOWN: Final = 5
"""Findings (other than unknown answers) a card's detail lists; the rest are counted."""


def _finding_line(f: Finding, trails: _Trails | None) -> str:
    title = rule_title(f.code) or f.code
    line = f"- **{_md(title)}** (`{f.code}` at `{_md(f.path) or '(input)'}`)"
    if title.lower() not in f.message.lower():
        line += f": {_md(f.message)}"
    return line + "." + _trail(f, trails)


def _unknown_line(unknown: Sequence[Finding], trails: _Trails | None) -> str:
    items = []
    for f in unknown:  # the path names the answer; a trail only where FHIR data bore on it
        # (most unknown answers have none: their path is not looked at further)
        trail = (_trail(f, trails).strip().rstrip(".") if trails is not None
                 and f.path in trails else "")
        items.append(f"`{_md(f.path)}` ({trail[0].lower()}{trail[1:]})" if trail
                     else f"`{_md(f.path)}`")
    return f"- **Ask before needling** (`{_UNKNOWN}`): {', '.join(items)}."


def _detail(result: ScreeningResult, inputs: FhirPatientInputs | None,
            ranked: Sequence[Finding]) -> str:
    lines = [
        f"**{_DECISION_LABEL[result.decision].capitalize()}** on {result.on.isoformat()}; "
        f"policy `{_md(result.policy_name)}` (`{result.policy}`), dryneedle {result.version}.",
        "",
    ]
    trails = _trails(inputs)
    unknown = [f for f in ranked if f.code == _UNKNOWN]
    grouped = False
    shown = 0
    for f in ranked:
        if f.code == _UNKNOWN:
            if not grouped:
                lines.append(_unknown_line(unknown, trails))
                grouped = True
        elif shown < _SHOWN:
            lines.append(_finding_line(f, trails))
            shown += 1
    more = len(ranked) - len(unknown) - shown
    if more:
        lines.append(f"- And {more} more finding{'s' if more != 1 else ''} (every code in the "
                     f"card's `extension`; [rule catalog]({_DOCS_URL}rules.html)).")
    if inputs is not None and inputs.unclassified_medications:
        n = len(inputs.unclassified_medications)
        lines.append(f"- **{n} medication{'s' if n != 1 else ''} could not be classified: check "
                     "for antithrombotics**: "
                     + "; ".join(_md(m) for m in inputs.unclassified_medications) + ".")
    if inputs is not None:
        used: set[str] = set()
        reasons: dict[str, int] = {}
        conflicting: set[str] = set()
        for p in inputs.provenance:  # one pass: used resources, ignored reasons, conflicts
            action = p.action
            if action is Action.USED:
                used.add(p.resource)
            elif action is Action.IGNORED:
                reasons[p.reason] = reasons.get(p.reason, 0) + 1
            elif action is Action.CONFLICT:
                conflicting.add(p.path)
        used.discard("answers")
        n_used = len(used)
        line = f"FHIR: {n_used} resource{'s' if n_used != 1 else ''} used"
        if reasons:
            line += f"; {sum(reasons.values())} ignored: " + ", ".join(
                k + (f" \u00d7{v}" if v > 1 else "") for k, v in sorted(reasons.items()))
        conflicts = sorted(conflicting)
        if conflicts:
            line += "; conflicting data left unknown: " + ", ".join(f"`{c}`" for c in conflicts)
        lines += ["", line + ". Absent data is unknown, never no."]
    cited = _cited(ranked)
    if cited:
        lines += ["", f"[Sources]({_DOCS_URL}sources.html): "
                  + ", ".join(f"`{sid}`" for sid in cited) + "."]
    return "\n".join(lines)


_SECONDARY: Final = frozenset(sid for sid, s in SOURCES.items() if s.grade != "P")
"""The ids of the known sources that are not primary (``SOURCES`` is read-only)."""


def _cited(ranked: Sequence[Finding]) -> list[str]:
    seen: dict[str, None] = {}
    for f in ranked:  # every finding's sources, in first-seen order
        for sid in f.sources:
            seen[sid] = None
    cited = [s for s in seen if s in SOURCES]
    return sorted(cited, key=_SECONDARY.__contains__)  # primary sources first (stable)


def _lead_source(ranked: Sequence[Finding]) -> Source | None:
    """The first primary clinical source of the most important finding that cites one."""
    for f in ranked:
        for sid in f.sources:
            if sid in _LEAD_SOURCES and sid in SOURCES:
                return SOURCES[sid]
    return None


def _short(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:") + "\u2026"


def cds_cards(
    result: ScreeningResult,
    *,
    inputs: FhirPatientInputs | None = None,
    always: bool = False,
    uuid_seed: str = "",
) -> list[dict[str, Any]]:
    """Return a screening result as CDS Hooks 2.0 cards (``cds-hooks-2.0``).

    One card per decision: ``summary`` under 140 characters naming the decision and its
    reasons; ``indicator`` ``critical`` (not eligible), ``warning`` (needs review, eligible
    with precautions) or ``info`` (eligible); ``source`` with label, url and a topic coding the
    decision; ``detail`` in Markdown listing the five most serious findings (then a count of
    the others) with rule id, path, the FHIR
    resources behind it and its sources; ``overrideReasons`` with displays; a deterministic
    ``uuid`` (UUID 5 of the card's content and ``uuid_seed``). A plain ``eligible`` result
    without findings has nothing to say: no card, unless ``always``.

    Args:
        result: The screening result.
        inputs: The FHIR inputs (adds where each answer came from).
        always: Return an ``info`` card even when there is nothing to say.
        uuid_seed: Mixed into the card uuid (e.g. the hook instance).

    Returns:
        The cards (possibly empty).
    """
    if result.decision is Decision.ELIGIBLE and not result.findings and not always:
        return []
    ranked = _ranked(result.findings)
    lead = _lead_source(ranked)
    label = f"dryneedle {result.version} screening"
    url = _DOCS_URL
    if lead is not None:  # the primary clinical source of the guidance (cds-hooks-2.0 Source)
        label = _short(lead.reference, _LABEL_MAX)
        url = lead.url or url
    card: dict[str, Any] = {
        "summary": _summary(result),
        "indicator": _INDICATOR[result.decision],
        "detail": _detail(result, inputs, ranked),
        "source": {
            "label": label,
            "url": url,
            "topic": {"system": SYSTEMS["decision"], "code": result.decision.value,
                      "display": _DECISION_LABEL[result.decision].capitalize()},
        },
        "overrideReasons": [
            {"system": SYSTEMS["override-reason"], "code": code, "display": display}
            for code, display, _ in OVERRIDE_REASONS
        ],
        "extension": {"io.readthedocs.dryneedle": {
            "decision": result.decision.value,
            "codes": list(dict.fromkeys(f.code for f in ranked)),
            "missing": list(result.missing),
            "policy": {"name": result.policy_name, "fingerprint": result.policy},
            **({"unclassified_medications": list(inputs.unclassified_medications)}
               if inputs is not None and inputs.unclassified_medications else {}),
        }},
    }
    if type(uuid_seed) is str:  # the card holds strings only (see _uuid_text)
        name = _uuid_text([uuid_seed, card])
    else:  # pragma: no cover - a seed of another type, written by json as it always was
        name = _UUID_JSON.encode([uuid_seed, card]).encode("ascii")
    return [{"uuid": _uuid5(name), **card}]


def cds_response(
    result: ScreeningResult,
    *,
    inputs: FhirPatientInputs | None = None,
    always: bool = False,
    uuid_seed: str = "",
) -> dict[str, Any]:
    """Return the CDS Hooks response body ``{"cards": [...]}`` (see :func:`cds_cards`)."""
    return {"cards": cds_cards(result, inputs=inputs, always=always, uuid_seed=uuid_seed)}
