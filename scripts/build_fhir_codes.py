"""Rebuild the VSAC-derived answer-code tables in ``src/dryneedle/fhir/data/``.

What it is for: the SNOMED CT, ICD-10-CM and RxNorm codes that set a screening answer are taken
from published VSAC value-set expansions (as shipped with the HL7 / CQF eCQM content, e.g.
``github.com/cqframework/ecqm-content-qicore-2024`` and ``cqframework/ecqm-content-r4``,
folder ``input/vocabulary/valueset/external/``), whose expansions name every code with its
code system's display. Each entry records the value set it came from. Codes seen in the
Synthea sample bundles but in none of these value sets are added by hand below, with the
display the bundles show (evidence of use, source ``synthea``). Some codes are taken one by one
from a value set that also holds codes bearing on no answer (``PICKED``: e.g. the RxNorm
ingredient concepts of the ATC B01A agents in the US Core allergy-substance value set, which
the same content repository ships), and a few from other published sources, each with a
``note`` naming the source that shows the code with its name (``HAND``).

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
VERSION = "3"

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
    (0, "2.16.840.1.113762.1.4.1047.44", "vascular_disease"),
    (0, "2.16.840.1.113883.3.526.3.369", "vascular_disease"),
    (0, "2.16.840.1.113883.3.3157.4055", "pregnancy"),
    (0, "2.16.840.1.113883.3.526.3.378", "pregnancy"),
    (0, "2.16.840.1.113883.3.464.1003.102.12.1011", "acute_illness"),
]

# Codes picked one by one from a value set (directory, file, {code: answer}); the display is
# the value set's. US Core 3.1.1 "Common substances for allergy and intolerance documentation"
# lists RxNorm ingredient concepts (TTY IN) and SNOMED CT substances: a MedicationRequest coded
# by ingredient, and an AllergyIntolerance coded by substance, are recognised.
US_CORE_SUBSTANCES = "ValueSet-us-core-allergy-substance.json"
PICKED: list[tuple[int, str, dict[str, str]]] = [
    (0, US_CORE_SUBSTANCES, {
        # ATC B01AA / B01AB / B01AC / B01AE / B01AF ingredients (RxNorm)
        "11289": "anticoagulant_therapy",    # Warfarin
        "5224": "anticoagulant_therapy",     # heparin
        "67108": "anticoagulant_therapy",    # Enoxaparin
        "1037042": "anticoagulant_therapy",  # dabigatran etexilate
        "1114195": "anticoagulant_therapy",  # rivaroxaban
        "1364430": "anticoagulant_therapy",  # apixaban
        "32968": "anticoagulant_therapy",    # clopidogrel
        "10594": "anticoagulant_therapy",    # Ticlopidine
        "1116632": "anticoagulant_therapy",  # Ticagrelor
        "1191": "anticoagulant_therapy",     # Aspirin
        "3521": "anticoagulant_therapy",     # Dipyridamole
        "21107": "anticoagulant_therapy",    # cilostazol
        # metal allergy: the substances (RxNorm and SNOMED CT)
        "1311629": "metal_allergy",          # nickel
        "31738": "metal_allergy",            # nickel sulfate
        "43921001": "metal_allergy",         # Nickel compound (substance)
    }),
    # Lymph node excision / dissection procedures named in the VSAC expansions of
    # 2.16.840.1.113883.3.3157.4056 Major Surgical Procedure,
    # 2.16.840.1.113762.1.4.1248.251 Head, Neck, and Thoracic Surgeries with High Risk Airway
    # Compromise and 2.16.840.1.113883.3.464.1003.198.12.1005 Bilateral Mastectomy: only those
    # whose name says lymph nodes were excised, dissected or removed (not biopsies).
    (0, "valueset-2.16.840.1.113883.3.3157.4056.json", dict.fromkeys([
        "112892003", "27842006", "33424003", "399733007", "935441000168106", "445917006",
        "458111000124107", "234245003", "395201008", "395200009", "395199006", "446420001",
        "446109005", "440383008", "83518006", "5317006", "37851009", "176263006", "41416003",
        "66245006", "78878001", "1263487006", "438338008"], "lymph_node_removal")),
    (0, "valueset-2.16.840.1.113762.1.4.1248.251.json", dict.fromkeys([
        "234249009", "178283002", "715787006", "11231000087108", "234248001", "373824001",
        "234247006", "78706005", "234246002", "395169002", "178287001"], "lymph_node_removal")),
    (0, "valueset-2.16.840.1.113883.3.464.1003.198.12.1005.json",
     {"14714006": "lymph_node_removal"}),
]

# Codes from other published sources, each shown there with this name (system, code, display,
# answer, extra source ids, note).
HAND: list[tuple[str, str, str, str, tuple[str, ...], str]] = [
    (ICD10CM, "Z79.02", "Long term (current) use of antithrombotics/antiplatelets",
     "anticoagulant_therapy", (),
     "ICD-10-CM tabular list, category Z79.0 (Long term (current) use of anticoagulants and "
     "antithrombotics/antiplatelets), next to Z79.01 (value set 2.16.840.1.113762.1.4.1029.366); "
     "title as listed with the code by the VA VistA encounter-form data (short title 'Long term "
     "(current) use of antithrombtc/antipltlts') and medtrack-io/icd_code lib/codes/codes_z79.ex"),
    (RXNORM, "613391", "prasugrel", "anticoagulant_therapy", (),
     "RxNorm ingredient (TTY IN) of ATC B01AC22; shown with this name in the HL7 Vulcan Real "
     "World Data IG 1.0.0 value set ExamplePrasugrelCodes "
     "(http://hl7.org/fhir/uv/vulcan-rwd/ValueSet/ExamplePrasugrelCodes), with 855812 "
     "'prasugrel 10 MG Oral Tablet'"),
    # RxNorm ingredients (TTY IN) of ATC B01A agents found in no value set above.
    (RXNORM, "1599538", "edoxaban", "anticoagulant_therapy", (),
     "RxNorm ingredient of an ATC B01AF agent (direct factor Xa inhibitors); shown with "
     "this name in the OHDSI Phenotype Library "
     "(OHDSI/PhenotypeLibrary inst/cohorts/919.json, commit 40106e4e), an OMOP vocabulary "
     "concept set item: CONCEPT_NAME 'edoxaban', CONCEPT_CODE '1599538', VOCABULARY_ID "
     "'RxNorm', CONCEPT_CLASS_ID 'Ingredient' (the same items give apixaban 1364430, "
     "rivaroxaban 1114195, dabigatran etexilate 1037042 and Warfarin 11289, as in the US "
     "Core value set); its clinical drugs 1599543 / 1599551 / 1599555 'edoxaban 15 / 30 / "
     "60 MG Oral Tablet' are in the VSAC value sets above; the same name and code in the "
     "OHDSI SCYLLA study's 'SCYLLA antithrombotics' concept set (ohdsi-studies/"
     "ScyllaCharacterization inst/cohorts/1102.json, commit 42ccae88)"),
    (RXNORM, "1546356", "dabigatran", "anticoagulant_therapy", (),
     "RxNorm ingredient of an ATC B01AE agent (direct thrombin inhibitors; the active moiety "
     "of dabigatran etexilate 1037042); shown with this name in the OHDSI SCYLLA study's "
     "'SCYLLA antithrombotics' concept set (ohdsi-studies/ScyllaCharacterization "
     "inst/cohorts/1102.json, commit 42ccae88): CONCEPT_NAME 'dabigatran', CONCEPT_CODE "
     "'1546356', VOCABULARY_ID 'RxNorm', CONCEPT_CLASS_ID 'Ingredient'"),
    (RXNORM, "154", "acenocoumarol", "anticoagulant_therapy", (),
     "RxNorm ingredient of an ATC B01AA agent (vitamin K antagonists); shown with this "
     "name in the CPIC database drug table "
     "(cpicpgx/cpic-schema drug.sql, commit 05f9b09c: 'RxNorm:154  acenocoumarol  PA452632'; "
     "the same table gives RxNorm:11289 warfarin, RxNorm:32968 clopidogrel and RxNorm:1191 "
     "aspirin, as in the US Core value set); the same name and code in the OHDSI SCYLLA "
     "study's 'SCYLLA antithrombotics' concept set (ohdsi-studies/ScyllaCharacterization "
     "inst/cohorts/1102.json, commit 42ccae88, an OMOP RxNorm Ingredient)"),
    (RXNORM, "8150", "phenprocoumon", "anticoagulant_therapy", (),
     "RxNorm ingredient of an ATC B01AA agent (vitamin K antagonists); shown with this "
     "name in the CPIC database drug table "
     "(cpicpgx/cpic-schema drug.sql, commit 05f9b09c: 'RxNorm:8150  phenprocoumon  "
     "PA450921')"),
    (SNOMED, "93419003", "Contact dermatitis caused by nickel (disorder)", "metal_allergy", (),
     "SNOMED CT concept with this fully specified name in SNOMED International's Editorial "
     "Guide (SNOMED-Documents/snomed-editorial-guide, readme/authoring/domain-specific-"
     "modeling/clinical-finding-and-disorder/clinical-finding-defining-attributes.md, commit "
     "253cf212: '93419003 |Contact dermatitis caused by nickel (disorder)|', its example "
     "of a finding caused by a base substance): an active one documents nickel sensitivity"),
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
    for which, file, picks in PICKED:
        vs = json.loads((dirs[which] / file).read_text(encoding="utf-8"))
        title = vs.get("title") or vs["name"]
        label = (f"{vs['id']} {title}" if "cts.nlm.nih.gov" in vs.get("url", "")
                 else f"{vs['url']} {vs.get('version', '')} {title}")
        listed = list(vs.get("expansion", {}).get("contains", []))
        listed += [{"system": inc.get("system"), **c}
                   for inc in vs.get("compose", {}).get("include", [])
                   for c in inc.get("concept", [])]
        found = {c["code"]: c for c in listed if c.get("system") in FILE_OF}
        missing = sorted(set(picks) - set(found))
        if missing:
            raise SystemExit(f"{file}: codes not in the value set: {missing}")
        for code, answer in picks.items():
            c = found[code]
            sources = [SOURCE_OF[c["system"]]]
            if file == US_CORE_SUBSTANCES:
                sources.append("us-core")
            rows[c["system"]].setdefault((code, answer), {
                "code": code, "display": c["display"], "flag": answer, "sources": sources,
                "valueset": " ".join(label.split()),
            })
    for system, code, display, answer, extra, note in HAND:
        rows[system].setdefault((code, answer), {
            "code": code, "display": display, "flag": answer,
            "sources": [SOURCE_OF[system], *extra], "note": note,
        })
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
                "by scripts/build_fhir_codes.py. Codes picked one by one from a value set "
                "(the US Core allergy-substance value set for RxNorm ingredients and substances; "
                "lymph node excision procedures) name it the same way; an entry with a 'note' "
                "instead names the published source that shows the code with its name. "
                "Value sets: " + " | ".join(sets) + "."
            ),
            "sources": used,
            "version": VERSION,
            "date": DATE,
            "system": system,
        }
        text = json.dumps({"header": header, "entries": entries}, indent=1, ensure_ascii=False)
        (DATA / name).write_text(text + "\n", encoding="utf-8")
        print(f"{name}: {len(entries)} entries")
    return 0


if __name__ == "__main__":
    sys.exit(main([Path(a) for a in sys.argv[1:3]]))
