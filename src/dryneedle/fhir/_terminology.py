"""Code systems, dryneedle's FHIR namespace, the terminology tables, and code matching.

What it is for: every URI and code the FHIR mapping reads or writes. The clinical code tables
are built from the data files in ``data/`` (read and checked by :mod:`._tables`, once, at
import), so a new terminology code is a new entry in a data file, with its source id:

* ``pregnancy-status.json`` -- LOINC 82810-3 and its answer codes (:data:`PREGNANCY_LOINC`,
  :data:`PREGNANCY_ANSWERS`);
* ``antithrombotic-atc.json`` -- the ATC group B01A (:data:`ANTITHROMBOTIC_ATC`);
* ``cpt-dry-needling.json`` -- CPT 20560 / 20561 and their first date of service
  (:data:`CPT_1_2`, :data:`CPT_3_PLUS`, :data:`CPT_FIRST_DATE`);
* ``history-flag-codes.json`` -- the clinic-policy ICD-10-CM flag patterns (:data:`FLAG_CODES`);
* ``allergy-terms.json`` -- the clinic-policy metal-allergy words (:data:`ALLERGY_TERMS`);
* ``answer-codes-snomed-ct.json``, ``answer-codes-icd10cm.json``, ``answer-codes-rxnorm.json``
  -- the codes of published value sets that set a screening answer (:data:`ANSWER_CODES`,
  extendable by a clinic with :func:`read_code_table`);
* ``antithrombotic-names.json`` -- INN names of the ATC B01A agents (:data:`ANTITHROMBOTIC_NAMES`);
* ``code-system-oids.json`` -- OID forms of the code systems (:data:`SYSTEM_ALIASES`);
* ``body-sites.json``, ``body-site-laterality.json``, ``site-finding-kinds.json`` -- the
  body-site-to-region table (:data:`BODY_SITES`, :data:`LATERALITY`, :data:`SITE_KINDS`).

The public names are documented where users read them, in :mod:`dryneedle.fhir`. The condition
catalog's ICD-10-CM codes live in :mod:`dryneedle.catalog`, not here.

May import: the standard library, :mod:`dryneedle.model` and :mod:`._tables`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Final

import attrs

from dryneedle.fhir._tables import Table, load_table, read_table
from dryneedle.model import History, Pregnancy, Region, SiteFindingKind, SiteSide

__all__ = [
    "ALLERGY_TERMS",
    "ANSWER_CODES",
    "ANTITHROMBOTIC_ATC",
    "ANTITHROMBOTIC_NAMES",
    "ATC",
    "BASE_URL",
    "BODY_SITES",
    "CPT",
    "CPT_1_2",
    "CPT_3_PLUS",
    "CPT_FIRST_DATE",
    "EXT_BODY_SIDE",
    "EXT_INSERTION",
    "EXT_SOURCE",
    "FLAG_CODES",
    "ICD10CM",
    "LATERALITY",
    "LOINC",
    "NO_ANSWER",
    "PREGNANCY_ANSWERS",
    "PREGNANCY_LOINC",
    "PREGNANCY_VALUES",
    "RXNORM",
    "SITE_KINDS",
    "SNOMED",
    "SYSTEMS",
    "SYSTEM_ALIASES",
    "UCUM",
    "AnswerCodes",
    "CodePatterns",
    "canonical_system",
    "code_matches",
    "icd10cm_key",
    "match_flags",
    "merge_codes",
    "read_code_table",
]

# --- code systems and our namespace -----------------------------------------------------------

LOINC: Final = "http://loinc.org"
ICD10CM: Final = "http://hl7.org/fhir/sid/icd-10-cm"
ATC: Final = "http://www.whocc.no/atc"
CPT: Final = "http://www.ama-assn.org/go/cpt"
SNOMED: Final = "http://snomed.info/sct"
RXNORM: Final = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM: Final = "http://unitsofmeasure.org"
"""UCUM unit system URI (quantities written by :func:`dryneedle.fhir.procedure`)."""

BASE_URL: Final = "https://dryneedle.readthedocs.io/fhir"

SYSTEMS: Final[Mapping[str, str]] = {
    "rule": f"{BASE_URL}/CodeSystem/rule",
    "muscle": f"{BASE_URL}/CodeSystem/muscle",
    "condition": f"{BASE_URL}/CodeSystem/condition",
    "adverse-event": f"{BASE_URL}/CodeSystem/adverse-event",
    "decision": f"{BASE_URL}/CodeSystem/decision",
    "override-reason": f"{BASE_URL}/CodeSystem/override-reason",
    "session-id": f"{BASE_URL}/NamingSystem/session-id",
    "patient-id": f"{BASE_URL}/NamingSystem/patient-id",
    "practitioner-id": f"{BASE_URL}/NamingSystem/practitioner-id",
}

EXT_INSERTION: Final = f"{BASE_URL}/StructureDefinition/insertion"
EXT_BODY_SIDE: Final = f"{BASE_URL}/StructureDefinition/body-side"
EXT_SOURCE: Final = f"{BASE_URL}/StructureDefinition/source"


# --- the terminology tables (data/*.json) -----------------------------------------------------


def _error(table: Table, problem: str, index: int | None = None) -> ValueError:
    where = "" if index is None else f"entries[{index}] ({table.entries[index].code!r}): "
    return ValueError(f"terminology file dryneedle.fhir/data/{table.name}: {where}{problem}")


def _coded(
    name: str, system: str, fields: tuple[str, ...] = (), optional: tuple[str, ...] = ()
) -> Table:
    """Load a table and check that it is in the code system the mapping reads or writes."""
    table = load_table(name, fields=fields, optional=optional)
    if table.header.system != system:
        msg = f"header.system: expected {system!r}, got {table.header.system!r}"
        raise _error(table, msg)
    return table


def _only(table: Table, codes: list[str], what: str) -> str:
    if len(codes) != 1:
        raise _error(table, f"expected exactly one {what}, found {len(codes)}")
    return codes[0]


def _pregnancy() -> tuple[str, dict[str, Pregnancy]]:
    table = _coded("pregnancy-status.json", LOINC, ("role",), ("pregnancy", "system", "note"))
    observations: list[str] = []
    answers: dict[str, Pregnancy] = {}
    for i, e in enumerate(table.entries):
        role, value = e.fields["role"], e.fields.get("pregnancy")
        if e.code in answers or e.code in observations:
            raise _error(table, "code listed twice", i)
        if e.fields.get("system") not in (None, LOINC):
            continue  # another code system's value (PREGNANCY_VALUES)
        if role == "observation" and value is None:
            observations.append(e.code)
        elif role == "answer" and value in {p.value for p in Pregnancy}:
            answers[e.code] = Pregnancy(value)
        else:
            msg = (f"role {role!r} with pregnancy {value!r}: expected an 'observation' without "
                   f"one, or an 'answer' with one of {[p.value for p in Pregnancy]}")
            raise _error(table, msg, i)
    return _only(table, observations, "observation code"), answers


def _antithrombotic() -> str:
    table = _coded("antithrombotic-atc.json", ATC)
    return _only(table, [e.code for e in table.entries], "ATC group")


def _cpt() -> tuple[str, str, date]:
    table = _coded("cpt-dry-needling.json", CPT, ("muscles", "valid_from"))
    by_count: dict[str, list[str]] = {"1-2": [], "3+": []}
    starts: set[date] = set()
    for i, e in enumerate(table.entries):
        count = e.fields["muscles"]
        if count not in by_count:
            raise _error(table, f"muscles {count!r}: expected '1-2' or '3+'", i)
        by_count[count].append(e.code)
        try:
            starts.add(date.fromisoformat(e.fields["valid_from"]))
        except ValueError:
            raise _error(table, "valid_from: not an ISO date", i) from None
    if len(starts) != 1:
        raise _error(table, f"the codes must share one valid_from date, found {len(starts)}")
    return (_only(table, by_count["1-2"], "code for 1-2 muscles"),
            _only(table, by_count["3+"], "code for 3 or more muscles"), starts.pop())


def _flag_codes() -> dict[str, dict[str, tuple[str, ...]]]:
    table = _coded("history-flag-codes.json", ICD10CM, ("flag",))
    known = {a.name for a in attrs.fields(History)}
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for i, e in enumerate(table.entries):
        flag = e.fields["flag"]
        if flag not in known:
            raise _error(table, f"flag {flag!r} is not a History field", i)
        by_system = out.setdefault(flag, {})
        by_system[ICD10CM] = (*by_system.get(ICD10CM, ()), e.code)
    return out


def _allergy_terms() -> tuple[str, ...]:
    table = load_table("allergy-terms.json", key="term")
    if table.header.system is not None:
        raise _error(table, "header.system: a word list has no code system")
    return tuple(e.code for e in table.entries)


# --- answer codes (value sets), names, systems, body sites -------------------------------------

NO_ANSWER: Final = "none"
"""The ``flag`` of a code reviewed as bearing on no screening answer (a clinic's own tables:
e.g. a medication checked not to be an antithrombotic, so it is no longer "unclassified")."""

_ANSWER_FLAGS: Final = frozenset(
    (*(a.name for a in attrs.fields(History) if a.name not in ("needle_phobia", "consent")),
     "pregnancy", NO_ANSWER)
)

AnswerCodes = Mapping[str, Mapping[str, tuple[tuple[str, str | None], ...]]]
"""``{system URI: {code: ((flag, display), ...)}}``: what a code says about the answers."""


def _answer_table(table: Table) -> dict[str, dict[str, tuple[tuple[str, str | None], ...]]]:
    out: dict[str, dict[str, tuple[tuple[str, str | None], ...]]] = {}
    for i, e in enumerate(table.entries):
        flag = e.fields["flag"]
        if flag not in _ANSWER_FLAGS:
            raise _error(table, f"flag {flag!r}: expected one of {sorted(_ANSWER_FLAGS)}", i)
        system = e.fields.get("system") or table.header.system
        if system is None:
            raise _error(table, "no code system (header.system or the entry's system)", i)
        uri = canonical_system(system) or system
        by_code = out.setdefault(uri, {})
        code = icd10cm_key(e.code) if uri == ICD10CM else e.code
        by_code[code] = (*by_code.get(code, ()), (flag, e.display))
    return out


def icd10cm_key(code: str) -> str:
    """Return an ICD-10-CM code as the answer tables key it (upper case, dot after 3 chars).

    The catalog path compares codes :meth:`CodePatterns.normalise`-d (no dots, trimmed,
    upper case); the answer tables are keyed the same way after this, so ``Z7901``,
    ``z79.01`` and ``Z79.01 `` all find ``Z79.01`` (SPEC 1.1 §8: evidence is never dropped).

    >>> icd10cm_key("z7901"), icd10cm_key(" O09.90"), icd10cm_key("Z33.1"), icd10cm_key("r51")
    ('Z79.01', 'O09.90', 'Z33.1', 'R51')
    """
    n = code.replace(".", "").strip().upper()  # as _norm_code (defined with the patterns)
    return f"{n[:3]}.{n[3:]}" if len(n) > 3 else n


def merge_codes(*tables: AnswerCodes) -> dict[str, dict[str, tuple[tuple[str, str | None], ...]]]:
    """Merge answer-code tables, later ones on top (a code's flags are added, never removed).

    Args:
        tables: Tables shaped like :data:`ANSWER_CODES`.

    Returns:
        The merged table.
    """
    out: dict[str, dict[str, tuple[tuple[str, str | None], ...]]] = {}
    for table in tables:
        for system, by_code in table.items():
            into = out.setdefault(system, {})
            for code, flags in by_code.items():
                into[code] = tuple(dict.fromkeys((*into.get(code, ()), *flags)))
    return out


def read_code_table(
    text: str, *, name: str = "codes",
) -> Mapping[str, Mapping[str, tuple[tuple[str, str | None], ...]]]:
    """Read a clinic's own answer-code table (the format of ``answer-codes-*.json``).

    The file is a JSON object with a ``header`` (``description``, ``sources``, ``version``,
    ``date`` and, optionally, ``system``) and ``entries``, each with ``code``, ``flag`` (a
    :class:`~dryneedle.model.History` field name, ``pregnancy`` for pregnant, or
    ``none`` for a code reviewed as bearing on no answer), ``sources`` (ids of
    :mod:`dryneedle.sources`, ``policy`` for the clinic's own decision), and optionally
    ``display``, ``system`` (when the header has none) and ``note``.

    Args:
        text: The file's JSON text.
        name: The file name, for error messages.

    Returns:
        The table, merged over :data:`ANSWER_CODES` when passed as ``codes=``.

    Raises:
        ValueError: When the file breaks a rule above (the message names the file and entry).

    >>> from dryneedle.fhir import RXNORM, read_code_table
    >>> table = read_code_table('''{"header": {"description": "Our clinic's own codes, reviewed.",
    ...   "sources": ["policy"], "version": "1", "date": "2026-12-01",
    ...   "system": "http://www.nlm.nih.gov/research/umls/rxnorm"},
    ...   "entries": [{"code": "197361", "flag": "none", "sources": ["policy"],
    ...                "note": "amlodipine: not an antithrombotic"}]}''')
    >>> table[RXNORM]["197361"]
    (('none', None),)
    """
    return _answer_table(read_table(text, name=name, fields=("flag",),
                                    optional=("system", "note", "valueset")))


def _answer_codes() -> dict[str, dict[str, tuple[tuple[str, str | None], ...]]]:
    tables = []
    for name, system in (("answer-codes-snomed-ct.json", SNOMED),
                         ("answer-codes-icd10cm.json", ICD10CM),
                         ("answer-codes-rxnorm.json", RXNORM)):
        tables.append(_answer_table(_coded(name, system, ("flag",), ("valueset", "note"))))
    return merge_codes(*tables)


def _system_aliases() -> dict[str, str]:
    table = load_table("code-system-oids.json", fields=("uri",))
    return {e.code: e.fields["uri"] for e in table.entries}


_ALIASES: Final = _system_aliases()


def canonical_system(system: str | None) -> str | None:
    """Return the canonical URI of a code system given as a URI or an HL7 OID (``urn:oid:``)."""
    if system is None:
        return None
    return _ALIASES.get(system, system)


def _names() -> tuple[str, ...]:
    table = load_table("antithrombotic-names.json", key="term", fields=("group",))
    for i, e in enumerate(table.entries):
        if not e.fields["group"].startswith("B01A"):
            raise _error(table, "group: expected an ATC B01A subgroup", i)
    return tuple(e.code for e in table.entries)


def _body_sites() -> dict[str, tuple[tuple[Region, ...], SiteSide | None]]:
    table = _coded("body-sites.json", SNOMED, ("regions",), ("side", "note"))
    out: dict[str, tuple[tuple[Region, ...], SiteSide | None]] = {}
    for i, e in enumerate(table.entries):
        try:
            regions = tuple(Region(r) for r in e.fields["regions"].split())
            side = SiteSide(e.fields["side"]) if "side" in e.fields else None
        except ValueError as exc:
            raise _error(table, str(exc), i) from None
        out[e.code] = (regions, side)
    return out


def _laterality() -> dict[str, SiteSide]:
    table = _coded("body-site-laterality.json", SNOMED, ("side",))
    return {e.code: SiteSide(e.fields["side"]) for e in table.entries}


def _site_kinds() -> dict[str, SiteFindingKind]:
    table = _coded("site-finding-kinds.json", SNOMED, ("kind",), ("note",))
    return {e.code: SiteFindingKind(e.fields["kind"]) for e in table.entries}


def _pregnancy_values() -> dict[tuple[str, str], Pregnancy]:
    table = load_table("pregnancy-status.json", fields=("role",),
                       optional=("pregnancy", "system", "note"))
    return {
        (e.fields.get("system") or LOINC, e.code): Pregnancy(e.fields["pregnancy"])
        for e in table.entries if e.fields["role"] == "answer"
    }


# Built once, at import; a bad data file fails the import with a message naming it.
_PREGNANCY: Final = _pregnancy()
_CPT_CODES: Final = _cpt()
PREGNANCY_LOINC: Final[str] = _PREGNANCY[0]
PREGNANCY_ANSWERS: Final[Mapping[str, Pregnancy]] = _PREGNANCY[1]
ANTITHROMBOTIC_ATC: Final[str] = _antithrombotic()
CPT_1_2: Final[str] = _CPT_CODES[0]
"""CPT code for 1 or 2 distinct muscles (``apta-cpt-2020``)."""
CPT_3_PLUS: Final[str] = _CPT_CODES[1]
"""CPT code for 3 or more distinct muscles (``apta-cpt-2020``)."""
CPT_FIRST_DATE: Final[date] = _CPT_CODES[2]
FLAG_CODES: Final[Mapping[str, Mapping[str, tuple[str, ...]]]] = _flag_codes()
ALLERGY_TERMS: Final[tuple[str, ...]] = _allergy_terms()
ANSWER_CODES: Final[AnswerCodes] = _answer_codes()
ANTITHROMBOTIC_NAMES: Final[tuple[str, ...]] = _names()
SYSTEM_ALIASES: Final[Mapping[str, str]] = _ALIASES
BODY_SITES: Final[Mapping[str, tuple[tuple[Region, ...], SiteSide | None]]] = _body_sites()
LATERALITY: Final[Mapping[str, SiteSide]] = _laterality()
SITE_KINDS: Final[Mapping[str, SiteFindingKind]] = _site_kinds()
PREGNANCY_VALUES: Final[Mapping[tuple[str, str], Pregnancy]] = _pregnancy_values()


# --- code matching ----------------------------------------------------------------------------


def _norm_code(code: str) -> str:
    return code.replace(".", "").strip().upper()


def code_matches(code: str, pattern: str) -> bool:
    """Match a code against a code, a prefix or an inclusive range of categories.

    Args:
        code: The code read from a resource (``D68.51``).
        pattern: A code, a prefix (``G40``) or a range (``D65-D69``); dots and case are
            ignored, and an empty pattern matches nothing.

    Returns:
        Whether the code falls under the pattern.

    >>> code_matches("d68.51", "D65-D69"), code_matches("G40.909", "G40"), code_matches("X", "")
    (True, True, False)
    """
    c = _norm_code(code)
    if not _norm_code(pattern).strip("-"):
        return False  # an empty pattern matches nothing (never everything)
    if "-" in pattern and not pattern.startswith("-"):
        first, last = (_norm_code(p) for p in pattern.split("-", 1))
        width = max(len(first), len(last))
        return first <= c[:width] <= last
    return c.startswith(_norm_code(pattern))


_Range = tuple[str, str, int]


@functools.lru_cache(maxsize=4096)
def _compiled(pattern: str) -> CodePatterns:
    return CodePatterns((pattern,))


class CodePatterns:
    """Code patterns normalised once: a code matches when :func:`code_matches` matches one.

    The answer is that of :func:`code_matches` (tested on random codes and patterns). A
    code is normalised once per match (or once for several tables, with :meth:`normalise`
    and :meth:`matches_normalised`), however many patterns there are, and the prefixes are
    matched in one ``str.startswith``: what makes matching cheap.

    Args:
        patterns: Codes, prefixes or ranges (as :func:`code_matches` reads them).

    >>> CodePatterns(["D65-D69", "G40"]).matches("D68.51")
    True
    """

    __slots__ = ("prefixes", "ranges")

    def __init__(self, patterns: Iterable[str]) -> None:
        prefixes: list[str] = []
        ranges: list[_Range] = []
        for pattern in patterns:
            if not _norm_code(pattern).strip("-"):
                continue  # an empty pattern matches nothing (never everything)
            if "-" in pattern and not pattern.startswith("-"):
                first, last = (_norm_code(p) for p in pattern.split("-", 1))
                ranges.append((first, last, max(len(first), len(last))))
            else:
                prefixes.append(_norm_code(pattern))
        self.prefixes: tuple[str, ...] = tuple(prefixes)
        self.ranges: tuple[_Range, ...] = tuple(ranges)

    def matches(self, code: str) -> bool:
        """Whether ``code`` falls under one of the patterns."""
        return self.matches_normalised(_norm_code(code))

    @staticmethod
    def normalise(code: str) -> str:
        """Return a code as the patterns are compared with it (no dots, trimmed, upper case).

        >>> CodePatterns.normalise(" d68.51")
        'D6851'
        """
        return _norm_code(code)

    def matches_normalised(self, code: str) -> bool:
        """:meth:`matches` for a code already :meth:`normalise`-d."""
        if code.startswith(self.prefixes):
            return True
        return any(first <= code[:width] <= last for first, last, width in self.ranges)


def match_flags(
    codings: Iterable[tuple[str | None, str]],
    flag_codes: Mapping[str, Mapping[str, Sequence[str]]],
) -> list[tuple[str, str | None, str]]:
    """Return (flag, system, code) for every coding matching the flag table.

    Args:
        codings: ``(system, code)`` pairs.
        flag_codes: A table shaped like :data:`FLAG_CODES`.

    Returns:
        The hits, in coding order, then table order.
    """
    hits = []
    shipped = flag_codes is FLAG_CODES
    for system, code in codings:
        if shipped:  # the shipped table never changes: its answer per code is kept
            if (system or "") in _SHIPPED_SYSTEMS:  # no patterns in another system
                hits += [(flag, system, code)
                         for flag in _shipped_flags(system or "", _norm_code(code))]
            continue
        normalised = _norm_code(code)
        for flag, by_system in flag_codes.items():
            patterns = by_system.get(system or "", ())
            if any(_compiled(p).matches_normalised(normalised) for p in patterns):
                hits.append((flag, system, code))
    return hits


_SHIPPED_SYSTEMS: Final = frozenset(system for by_system in FLAG_CODES.values()
                                   for system in by_system)


@functools.lru_cache(maxsize=4096)
def _shipped_flags(system: str, normalised: str) -> tuple[str, ...]:
    """The flags of :data:`FLAG_CODES` a normalised code of ``system`` matches, in table order."""
    return tuple(flag for flag, by_system in FLAG_CODES.items()
                 if any(_compiled(p).matches_normalised(normalised)
                        for p in by_system.get(system, ())))
