"""Golden outputs of the FHIR reader, the screening and the CDS Hooks call (issue #15).

Every bundle of ``../shared/fhir/synthea/`` and ``tests/data/fhir/`` is read by
:func:`~dryneedle.fhir.patient_from_fhir` (without a date or form, and as of a fixed date with
the all-"no" form the Synthea tests use), screened by :func:`~dryneedle.fhir.screen_fhir`
(cards, ``DetectedIssue``, ``OperationOutcome``) and sent through
:func:`~dryneedle.service.handle_hook` as the prefetch of three calls (``patient-view``,
``order-select`` with a planned site, the same with the form and an inspection). The outputs
are compared with ``tests/data/fhir_golden.json``, written from the code before the hook
call was made cheaper: the decision, the unknown answers, the finding codes and the card
uuids in clear, everything else (patient, provenance, origins, findings, the exact JSON of
the cards and bodies, key order included) as a digest. A speed-up must change none of it.

``tests/data/fhir_golden_cases.jsonl.gz`` widens this to the edge cases: the 1 558 distinct
inputs the FHIR, review and service tests gave ``patient_from_fhir`` (recorded twice, with the
shipped tables, the second time with the pregnancy-period tests; OIDs, malformed subjects,
contradictory statuses, site findings, pregnancy variants, Medication references, ...), each
with its outputs as digests, written by ``main``'s code of the day.

After a deliberate clinical change, regenerate the file (and say why in the commit)::

    PYTHONPATH=src python tests/test_fhir_golden.py --write
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dryneedle.fhir import FhirInputError, patient_from_fhir, screen_fhir
from dryneedle.fhir._evidence import Evidence
from dryneedle.fhir._reading import codings_of
from dryneedle.fhir._terminology import canonical_system
from dryneedle.model import SiteFinding
from dryneedle.service import handle_hook
from dryneedle.wire import converter

SYNTHEA = Path(__file__).parents[2] / "shared" / "fhir" / "synthea"
DATA = Path(__file__).parent / "data" / "fhir"
GOLDEN = Path(__file__).parent / "data" / "fhir_golden.json"
CASES = Path(__file__).parent / "data" / "fhir_golden_cases.jsonl.gz"
ON = date(2026, 11, 27)
ALL_NO: dict[str, bool | str | None] = {
    **dict.fromkeys(["bleeding_disorder", "anticoagulant_therapy", "immunocompromised",
                     "metal_allergy", "epilepsy", "diabetes", "vascular_disease",
                     "prior_adverse_reaction", "acute_illness", "lymph_node_removal"], False),
    "needle_phobia": "none", "consent": True, "pregnancy": "not_pregnant",
}
PREFETCH_OF = {"Patient": "patient", "MedicationRequest": "medicationRequests",
               "MedicationStatement": "medicationStatements", "Condition": "conditions",
               "AllergyIntolerance": "allergies", "Observation": "pregnancy",
               "Procedure": "procedures"}
ORDER = {"resourceType": "ServiceRequest", "status": "draft", "intent": "order",
         "bodySite": [{"coding": [{"system": "http://snomed.info/sct", "code": "76505004",
                                   "display": "Thigh structure"}]}]}


def _bundles() -> dict[str, Any]:
    """Every golden input by name: the shared Synthea bundles (when present), then ours."""
    paths = sorted(SYNTHEA.glob("*.json")) if SYNTHEA.is_dir() else []
    paths += sorted(p for p in DATA.glob("*.json") if p.name != "cases.json")
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in paths}


def _digest(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:20]


def _requests(bundle: Any) -> list[tuple[str, bytes]]:
    """Three hook calls with the bundle's resources as prefetch (one searchset per key)."""
    resources = [e.get("resource") for e in bundle.get("entry", [])]
    patients = [r for r in resources if isinstance(r, dict) and r.get("resourceType") == "Patient"]
    pid = str(patients[0].get("id", "p")) if patients else "p"
    prefetch: dict[str, Any] = dict.fromkeys(PREFETCH_OF.values())
    prefetch["patient"] = patients[0] if patients else None
    for kind, key in PREFETCH_OF.items():
        found = [r for r in resources if isinstance(r, dict) and r.get("resourceType") == kind]
        if kind != "Patient" and found:
            prefetch[key] = {"resourceType": "Bundle", "type": "searchset",
                             "entry": [{"resource": r} for r in found]}
    others = [r for r in resources if not isinstance(r, dict)
              or r.get("resourceType") not in PREFETCH_OF]
    if others:  # Medication resources, other types, non-objects: read (or ignored) as given
        prefetch["medicationRequests"] = {
            "resourceType": "Bundle", "type": "searchset",
            "entry": [*(prefetch["medicationRequests"] or {}).get("entry", []),
                      *({"resource": r} for r in others)]}
    order = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
        **ORDER, "subject": {"reference": f"Patient/{pid}"}}}]}
    form = {"io.readthedocs.dryneedle": {"answers": ALL_NO, "site_findings": []}}
    out = []
    for i, (service, hook, context, ext) in enumerate([
        ("dryneedle-screening", "patient-view", {}, None),
        ("dryneedle-screening-order-select", "order-select", {"draftOrders": order}, None),
        ("dryneedle-screening-order-select", "order-select", {"draftOrders": order}, form),
    ]):
        body: dict[str, Any] = {
            "hook": hook, "hookInstance": f"00000000-0000-4000-8000-{i:012d}",
            "context": {"userId": "Practitioner/1", "patientId": pid, **context},
            "prefetch": prefetch}
        if ext is not None:
            body["extension"] = ext
        out.append((service, json.dumps(body).encode()))
    return out


def _outputs(bundle: Any) -> dict[str, Any]:
    """What the golden file holds for one bundle (in clear, or digests)."""
    try:
        mapped: Any = patient_from_fhir(bundle).as_dict()
    except FhirInputError as exc:  # no single patient: what it says, and then as patient "p"
        mapped = str(exc)
        bundle = {**bundle, "entry": [{"resource": {"resourceType": "Patient", "id": "p"}},
                                      *bundle.get("entry", [])]}
    dated = patient_from_fhir(bundle, on=ON, answers=ALL_NO, site_findings=None)
    screening = screen_fhir(bundle, on=ON, answers=ALL_NO)
    planned = screen_fhir(bundle, on=ON, sites=[("upper_trapezius", "left")])
    result = screening.result
    hooks = [handle_hook(service, body, today=lambda: ON) for service, body in _requests(bundle)]
    return {
        "decision": result.decision.value,
        "missing": list(result.missing),
        "codes": [f.code for f in result.findings],
        "uuids": [[c["uuid"] for c in body.get("cards", [])] for _, body in hooks],
        "map": _digest(mapped),
        "map_dated": _digest(dated.as_dict()),
        "screen": _digest([screening.as_dict(), screening.inputs.as_dict(),
                           screening.detected_issues(), screening.operation_outcome()]),
        "cards": _digest([screening.cards(uuid_seed="golden"), screening.cards(always=True),
                          planned.cards(uuid_seed="planned"), planned.as_dict()]),
        "hooks": _digest([[status, json.dumps(body)] for status, body in hooks]),
    }


def _case_outputs(case: dict[str, Any]) -> dict[str, Any]:
    """The digests of one recorded edge case: mapped as recorded, then screened."""
    findings = (None if case["site_findings"] is None
                else [converter.structure(f, SiteFinding) for f in case["site_findings"]])
    on = date.fromisoformat(case["on"]) if case["on"] else None
    kwargs: dict[str, Any] = {"patient_id": case["patient_id"], "answers": case["answers"],
                              "site_findings": findings}
    out: dict[str, Any] = {}
    try:
        out["map"] = _digest(patient_from_fhir(
            case["resources"], on=on, pregnancy_status_max_age_days=case["max_age"],
            **kwargs).as_dict())
    except (FhirInputError, ValueError, TypeError) as exc:
        out["map"] = f"{type(exc).__name__}: {exc}"
    if case["max_age"] != 30:
        return out
    try:
        s = screen_fhir(case["resources"], on=on or ON, sites=[("upper_trapezius", "left")],
                        **kwargs)
        out["screen"] = _digest([s.as_dict(), s.inputs.as_dict(), s.cards(uuid_seed="c"),
                                 s.cards(always=True), s.detected_issues()])
    except (FhirInputError, ValueError, TypeError) as exc:
        out["screen"] = f"{type(exc).__name__}: {exc}"
    return out


def _cases() -> list[dict[str, Any]]:
    with gzip.open(CASES, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


BUNDLES = _bundles()
EXPECTED: dict[str, Any] = (json.loads(GOLDEN.read_text(encoding="utf-8"))["bundles"]
                            if GOLDEN.is_file() else {})


@pytest.mark.parametrize("name", sorted(BUNDLES))
def test_outputs_match_the_golden_file(name: str) -> None:
    """Same patient, answers, provenance, findings, cards (bytes and uuids) as recorded."""
    assert name in EXPECTED, f"{name} has no golden outputs: regenerate (module docstring)"
    assert _outputs(BUNDLES[name]) == EXPECTED[name]


def test_the_golden_file_covers_the_inputs() -> None:
    """Ours always; the 30 Synthea bundles wherever they are present."""
    ours = {p.name for p in DATA.glob("*.json") if p.name != "cases.json"}
    assert ours <= set(EXPECTED)
    assert len(EXPECTED) == len(ours) + 30
    if SYNTHEA.is_dir():
        assert set(BUNDLES) == set(EXPECTED)
    assert len(_cases()) == 1558


@pytest.mark.parametrize("start", range(0, 1600, 100))
def test_recorded_edge_cases_match_their_golden_outputs(start: int) -> None:
    """The edge cases of the FHIR tests: the same mapping and screening as recorded."""
    for i, line in enumerate(_cases()[start:start + 100], start):
        assert _case_outputs(line["case"]) == line["expect"], f"case {i}"


_ANY = st.none() | st.booleans() | st.integers() | st.sampled_from(
    ["", " ", "M79.18 ", "urn:oid:2.16.840.1.113883.6.96", "http://snomed.info/sct", "x"])
_CODING = st.dictionaries(st.sampled_from(["system", "code", "display"]), _ANY) | _ANY
_CONCEPT = (st.dictionaries(st.sampled_from(["coding", "text"]),
                            st.lists(_CODING, max_size=4) | st.tuples(_CODING) | _ANY) | _ANY)


@settings(max_examples=300, deadline=None)
@given(_CONCEPT)
def test_the_fused_coding_reader_is_codings_of_with_canonical_systems(concept: Any) -> None:
    """``Evidence.codings`` reads a concept in one loop: as codings_of, OIDs as URIs."""
    expected = [(canonical_system(system), code) for system, code in codings_of(concept)]
    assert Evidence.codings(None, concept) == expected  # type: ignore[arg-type]


def _write() -> None:
    """Write the golden file: one compact line per bundle (small diffs)."""
    lines = [f"{json.dumps(name)}:{json.dumps(_outputs(bundle), separators=(',', ':'))}"
             for name, bundle in sorted(BUNDLES.items())]
    GOLDEN.write_text('{"description":"Golden outputs of tests/test_fhir_golden.py (see its '
                      'docstring).",\n"bundles":{\n' + ",\n".join(lines) + "}}\n",
                      encoding="utf-8")


def _write_cases(cases: list[dict[str, Any]]) -> None:
    """Rewrite the expected outputs of the recorded edge cases (the inputs are kept)."""
    with gzip.GzipFile(CASES, "wb", mtime=0) as f:
        for case in cases:
            line = {"case": case, "expect": _case_outputs(case)}
            f.write((json.dumps(line, separators=(",", ":")) + "\n").encode())


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    _write()
    _write_cases([line["case"] for line in _cases()])
