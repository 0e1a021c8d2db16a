"""CDS Hooks 2.0 cards: a screening result as the card a clinician sees in the EHR.

What it is for: :func:`cds_cards` (one card per decision: a summary under 140 characters, an
indicator, a Markdown detail naming every finding, the FHIR resources behind it and its
sources, override reasons, a deterministic uuid) and :func:`cds_response` (the response body).

May import: the standard library, :mod:`dryneedle.findings`, :mod:`dryneedle.screening` (the
result type), :mod:`dryneedle.sources` and, in this package, :mod:`._outbound`
(:func:`~._outbound.rule_title`), :mod:`._provenance` and :mod:`._terminology`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any, Final

from dryneedle.fhir._outbound import rule_title
from dryneedle.fhir._provenance import Action, FhirPatientInputs
from dryneedle.fhir._terminology import BASE_URL, SYSTEMS
from dryneedle.findings import Decision, Finding, Severity
from dryneedle.screening import ScreeningResult
from dryneedle.sources import SOURCES

__all__ = ["cds_cards", "cds_response"]

_UUID_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, BASE_URL)
_INDICATOR: Final[Mapping[Decision, str]] = {
    Decision.NOT_ELIGIBLE: "critical",
    Decision.NEEDS_REVIEW: "warning",
    Decision.ELIGIBLE_WITH_PRECAUTIONS: "warning",
    Decision.ELIGIBLE: "info",
}
_DECISION_LABEL: Final[Mapping[Decision, str]] = {
    d: d.value.replace("_", " ") for d in Decision
}
_OVERRIDE_REASONS: Final = (
    ("data-outdated", "Patient data shown is incorrect or outdated"),
    ("answers-confirmed", "Missing answers were confirmed with the patient"),
    ("clinician-judgement", "Clinician judgement: benefit outweighs the risk"),
    ("no-needling-planned", "No dry needling is planned"),
)
_SUMMARY_MAX: Final = 139  # CDS Hooks: summary < 140 characters
_DOCS_URL: Final = "https://dryneedle.readthedocs.io/"


def _label(f: Finding) -> str:
    if f.code == "screening.unknown_answer":
        return f.path.rsplit(".", 1)[-1].replace("_", " ") + " unknown"
    title = rule_title(f.code)
    if title is None:
        return f.code
    return title[0].lower() + title[1:]


def _summary(result: ScreeningResult) -> str:
    head = f"Dry needling: {_DECISION_LABEL[result.decision]}"
    wanted = {
        Decision.NOT_ELIGIBLE: (Severity.ERROR,),
        Decision.NEEDS_REVIEW: (Severity.ERROR, Severity.WARNING),
        Decision.ELIGIBLE_WITH_PRECAUTIONS: (Severity.ERROR, Severity.WARNING),
        Decision.ELIGIBLE: (Severity.ERROR, Severity.WARNING, Severity.INFO),
    }[result.decision]
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


def _detail(result: ScreeningResult, inputs: FhirPatientInputs | None) -> str:
    lines = [
        f"**Decision: {_DECISION_LABEL[result.decision]}**, evaluated on "
        f"{result.on.isoformat()} under policy `{_md(result.policy_name)}` (fingerprint "
        f"`{result.policy}`), dryneedle {result.version}.",
        "",
    ]
    cited: list[str] = []
    if result.findings:
        lines += ["**Findings** (most serious first)", ""]
    order = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
    for f in sorted(result.findings, key=lambda f: order[Severity(f.severity)]):
        if f.code == "screening.unknown_answer":
            name = "Unknown answer: " + f.path.rsplit(".", 1)[-1].replace("_", " ")
        else:
            name = rule_title(f.code) or f.code
        line = (f"- **{_md(name)}** (`{f.code}`, {Severity(f.severity).value}) at "
                f"`{_md(f.path) or '(input)'}`: {_md(f.message)}.")
        if inputs is not None:
            trail = inputs.provenance_for(f.path)
            used = [p for p in trail if p.action is Action.USED]
            if used:
                line += " From: " + "; ".join(
                    _md(_resource_label(p.resource)) + (f" (`{_md(p.code)}`)" if p.code else "")
                    for p in used
                ) + "."
            unusable = [p for p in trail if p.action in (Action.CONFLICT, Action.IGNORED)]
            if unusable:
                line += " Not usable: " + "; ".join(
                    f"{_md(_resource_label(p.resource))} ({p.reason})" for p in unusable
                ) + "."
            superseded = [p for p in trail if p.action is Action.SUPERSEDED]
            if superseded:
                line += " Superseded: " + "; ".join(
                    f"{_md(_resource_label(p.resource))} {json.dumps(p.value)} ({p.reason})"
                    for p in superseded
                ) + "."
        if f.sources:
            line += " Sources: " + ", ".join(f.sources) + "."
        lines.append(line)
        cited.extend(f.sources)
    if result.missing:
        lines += ["", "**Answers to collect** before needling: "
                  + ", ".join(f"`{p}`" for p in result.missing) + "."]
    if inputs is not None and inputs.unclassified_medications:
        n = len(inputs.unclassified_medications)
        lines += ["", f"**{n} medication{'s' if n != 1 else ''} could not be classified: check "
                  "for antithrombotics**: "
                  + "; ".join(_md(m) for m in inputs.unclassified_medications) + "."]
    if inputs is not None:
        n_used = len({p.resource for p in inputs.provenance
                      if p.action is Action.USED and p.resource != "answers"})
        reasons: dict[str, int] = {}
        for p in inputs.ignored:
            reasons[p.reason] = reasons.get(p.reason, 0) + 1
        line = f"**FHIR inputs**: {n_used} resource{'s' if n_used != 1 else ''} used"
        if reasons:
            line += ", ignored: " + ", ".join(f"{k} ({v})" for k, v in sorted(reasons.items()))
        conflicts = sorted({p.path for p in inputs.provenance if p.action is Action.CONFLICT})
        if conflicts:
            line += "; conflicting data left unknown: " + ", ".join(f"`{c}`" for c in conflicts)
        lines += ["", line + ". Absent FHIR data is read as unknown, never as no."]
    sources = [s for s in dict.fromkeys(cited) if s in SOURCES]
    if sources:
        lines += ["", "**Sources**", ""]
        for sid in sources:
            src = SOURCES[sid]
            ref = f"- `{sid}` ({src.grade}): {_md(src.reference)}"
            if src.url:
                ref += f" <{src.url}>"
            lines.append(ref)
    return "\n".join(lines)


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
    decision; ``detail`` in Markdown listing every finding with its rule id, path, the FHIR
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
    card: dict[str, Any] = {
        "summary": _summary(result),
        "indicator": _INDICATOR[result.decision],
        "detail": _detail(result, inputs),
        "source": {
            "label": f"dryneedle {result.version} screening",
            "url": _DOCS_URL,
            "topic": {"system": SYSTEMS["decision"], "code": result.decision.value,
                      "display": _DECISION_LABEL[result.decision].capitalize()},
        },
        "overrideReasons": [
            {"system": SYSTEMS["override-reason"], "code": code, "display": display}
            for code, display in _OVERRIDE_REASONS
        ],
        "extension": {"io.readthedocs.dryneedle": {
            "decision": result.decision.value,
            "codes": list(dict.fromkeys(f.code for f in result.findings)),
            "missing": list(result.missing),
            "policy": {"name": result.policy_name, "fingerprint": result.policy},
            **({"unclassified_medications": list(inputs.unclassified_medications)}
               if inputs is not None and inputs.unclassified_medications else {}),
        }},
    }
    blob = json.dumps([uuid_seed, card], sort_keys=True, separators=(",", ":"))
    return [{"uuid": str(uuid.uuid5(_UUID_NAMESPACE, blob)), **card}]


def cds_response(
    result: ScreeningResult,
    *,
    inputs: FhirPatientInputs | None = None,
    always: bool = False,
    uuid_seed: str = "",
) -> dict[str, Any]:
    """Return the CDS Hooks response body ``{"cards": [...]}`` (see :func:`cds_cards`)."""
    return {"cards": cds_cards(result, inputs=inputs, always=always, uuid_seed=uuid_seed)}
