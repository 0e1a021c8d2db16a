"""Rebuild the VSAC-derived answer-code tables in ``src/dryneedle/fhir/data/``.

What it is for: the SNOMED CT, ICD-10-CM and RxNorm codes that set a screening answer are taken
from published VSAC value-set expansions (as shipped with the HL7 / CQF eCQM content, e.g.
``github.com/cqframework/ecqm-content-qicore-2024`` and ``cqframework/ecqm-content-r4``,
folder ``input/vocabulary/valueset/external/``), whose expansions name every code with its
code system's display. Each entry records the value set it came from. Codes seen in the
Synthea sample bundles but in none of these value sets are added by hand below, with the
display the bundles show (evidence of use, source ``synthea``).

Usage (from the repository root)::

    python scripts/build_fhir_codes.py QICORE_2024_VALUESET_DIR R4_VALUESET_DIR

It rewrites ``answer-codes-*.json``; review the diff before committing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "src" / "dryneedle" / "fhir" / "data"
DATE = "2026-12-01"

SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SOURCE_OF = {SNOMED: "snomed-ct", ICD10CM: "icd10cm", RXNORM: "rxnorm"}
FILE_OF = {SNOMED: "answer-codes-snomed-ct.json", ICD10CM: "answer-codes-icd10cm.json",
           RXNORM: "answer-codes-rxnorm.json"}

# (directory: 0 = qicore-2024, 1 = r4), value-set OID, answer.
VALUE_SETS = [
    (0, "2.16.840.1.113762.1.4.1029.287", "bleeding_disorder"),
    (0, "2.16.840.1.113762.1.4.1248.23", "bleeding_disorder"),
    (1, "2.16.840.1.113883.3.117.1.7.1.201", "anticoagulant_therapy"),
    (0, "2.16.840.1.113883.3.117.1.7.1.200", "anticoagulant_therapy"),
    (0, "2.16.840.1.113762.1.4.1248.22", "anticoagulant_therapy"),
    (0, "2.16.840.1.113883.3.3157.4045", "anticoagulant_therapy"),
    (0, "2.16.840.1.113762.1.4.1029.366", "anticoagulant_therapy"),
    (0, "2.16.840.1.113883.3.464.1003.120.12.1003", "immunocompromised"),
    (0, "2.16.840.1.113883.3.666.5.1940", "immunocompromised"),
    (0, "2.16.840.1.113762.1.4.1248.171", "epilepsy"),
    (0, "2.16.840.1.113883.3.464.1003.105.12.1206", "epilepsy"),
    (0, "2.16.840.1.113883.3.464.1003.103.12.1001", "diabetes"),
    (1, "2.16.840.1.113883.3.464.1003.109.12.1004", "diabetes"),
    (0, "2.16.840.1.113762.1.4.1047.21", "vascular_disease"),
    (0, "2.16.840.1.113883.3.3157.4055", "pregnancy"),
    (0, "2.16.840.1.113883.3.526.3.378", "pregnancy"),
    (0, "2.16.840.1.113883.3.464.1003.102.12.1011", "acute_illness"),
]

# Seen in the Synthea bundles (with these displays), in none of the value sets above.
SYNTHEA_EXTRA: list[tuple[str, str, str, str]] = [
    # Synthea shows "Tubal pregnancy"; the VSAC Pregnancy value set 2.16.840.1.113883.3.526.3.378
    # (ecqm-content-r4 edition) names it "Tubal pregnancy (disorder)".
    (SNOMED, "79586000", "Tubal pregnancy (disorder)", "pregnancy"),
]


def main(dirs: list[Path]) -> int:
    """Write the tables; return the exit status."""
    rows: dict[str, dict[tuple[str, str], dict[str, object]]] = {s: {} for s in FILE_OF}
    titles: dict[str, str] = {}
    for which, oid, answer in VALUE_SETS:
        vs = json.loads((dirs[which] / f"valueset-{oid}.json").read_text(encoding="utf-8"))
        titles[oid] = vs.get("title") or vs["name"]
        for c in vs["expansion"]["contains"]:
            system = c["system"]
            if system not in FILE_OF:
                continue
            key = (c["code"], answer)
            row = rows[system].setdefault(key, {
                "code": c["code"], "display": c["display"], "flag": answer,
                "sources": [SOURCE_OF[system]], "valueset": f"{oid} {titles[oid]}",
            })
            if f"{oid} " not in str(row["valueset"]):
                row["valueset"] = f"{row['valueset']}; {oid} {titles[oid]}"
    for system, code, display, answer in SYNTHEA_EXTRA:
        rows[system].setdefault((code, answer), {
            "code": code, "display": display, "flag": answer,
            "sources": [SOURCE_OF[system], "synthea"],
        })
    for system, name in FILE_OF.items():
        entries = sorted(rows[system].values(), key=lambda r: (str(r["flag"]), str(r["code"])))
        used = sorted({s for e in entries for s in e["sources"]})  # type: ignore[attr-defined]
        sets = sorted({t for e in entries for t in str(e.get("valueset", "")).split("; ") if t})
        header = {
            "description": (
                f"Codes of {SOURCE_OF[system]} that set a screening answer (field 'flag': a "
                "History field name, or 'pregnancy' for pregnant) when an active, unrefuted "
                "resource carries one. Each code and display is taken from a published VSAC "
                "value-set expansion (field 'valueset': OID and title; the expansion gives the "
                "code system's own display), read from the HL7/CQF eCQM content repositories "
                "cqframework/ecqm-content-qicore-2024 and cqframework/ecqm-content-r4; built "
                "by scripts/build_fhir_codes.py. Value sets: " + " | ".join(sets) + "."
            ),
            "sources": used,
            "version": "1",
            "date": DATE,
            "system": system,
        }
        text = json.dumps({"header": header, "entries": entries}, indent=1, ensure_ascii=False)
        (DATA / name).write_text(text + "\n", encoding="utf-8")
        print(f"{name}: {len(entries)} entries")
    return 0


if __name__ == "__main__":
    sys.exit(main([Path(a) for a in sys.argv[1:3]]))
