"""CDS Hooks response and feedback invariants, checked on every body the service tests see.

Each check mirrors one invariant of the CDS Hooks specification and cites it: the 2.0 text
(``cds-hooks-2.0``, https://cds-hooks.hl7.org/2.0/) and the FHIRPath invariants of the 3.0
ballot's logical models (HL7/cds-hooks ``input/fsh/invariants/*.fsh``, 3.0.0-ballot), which
are evaluated with fhirpathpy (dev extra) and, each, mirrored in plain Python.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

fhirpath = pytest.importorskip("fhirpathpy").evaluate

# (id, FHIRPath expression, context) from HL7/cds-hooks 3.0.0-ballot input/fsh/invariants.
RESPONSE_INVARIANTS = (
    ("cds-resp-1", "(selectionBehavior = 'at-most-one') implies "
                   "suggestions.where(isRecommended).count() <= 1", "card"),
    ("cds-resp-6", "suggestions.exists() implies selectionBehavior.exists()", "card"),
    ("cds-resp-4", "all(display.exists())", "overrideReasons"),
    ("cds-resp-3", "(type != 'smart') implies (appContext.empty())", "link"),
    ("cds-resp-5", "actions.all(description.exists())", "suggestion"),
    ("cds-resp-7", "actionSelectionBehavior.empty() or actionSelectionBehavior = 'all' or "
                   "actionSelectionBehavior = 'any' or actionSelectionBehavior = 'at-most-one'",
     "suggestion"),
)
FEEDBACK_INVARIANTS = (
    ("cds-fb-1", "outcome = 'accepted' or outcome = 'overridden'", "feedback"),
    ("cds-fb-3", "reason.exists() or userComment.exists()", "overrideReason"),
)
CARD_KEYS = {"uuid", "summary", "detail", "indicator", "source", "suggestions",
             "selectionBehavior", "overrideReasons", "links", "extension"}


def _fp(expression: str, node: Any) -> bool:
    result = fhirpath(node, expression)
    return result in ([True], [])


def check_card(card: dict[str, Any]) -> None:
    """One card: the 2.0 card attributes and the 3.0 ballot response invariants."""
    assert set(card) <= CARD_KEYS  # 2.0 "Card Attributes"
    # 2.0: summary REQUIRED, "One-sentence, <140-character summary message"
    assert isinstance(card["summary"], str)
    assert 0 < len(card["summary"]) < 140
    # 2.0: indicator REQUIRED, "Allowed values ... info, warning, critical"
    assert card["indicator"] in {"info", "warning", "critical"}
    # 2.0: source REQUIRED with source.label REQUIRED; url an absolute URL
    assert isinstance(card["source"]["label"], str)
    assert card["source"]["label"].strip()
    assert card["source"].get("url", "https://x").startswith(("https://", "http://"))
    # 2.0: detail "MUST be represented in (GitHub Flavored) Markdown" (a string)
    assert isinstance(card.get("detail", ""), str)
    # 2.0: uuid OPTIONAL, used for feedback; the 3.0 ballot types it as uuid
    uuid.UUID(card["uuid"])
    # 2.0 / cds-resp-4: "the CDS Service MUST populate a display value for each reason's Coding"
    reasons = card.get("overrideReasons", [])
    assert all(r.get("display") and r.get("code") and r.get("system") for r in reasons)
    # cds-resp-6: "If suggestions are present, selectionBehavior MUST also be provided."
    assert "suggestions" not in card or card["selectionBehavior"] in {"at-most-one", "any"}
    # cds-resp-1: at most one recommended suggestion under at-most-one
    if card.get("selectionBehavior") == "at-most-one":
        assert sum(bool(s.get("isRecommended")) for s in card.get("suggestions", [])) <= 1
    for s in card.get("suggestions", []):
        assert s["label"]
        assert all(a.get("description") for a in s.get("actions", []))  # cds-resp-5
        assert s.get("actionSelectionBehavior", "all") in {"all", "any", "at-most-one"}  # -7
        for a in s.get("actions", []):  # cds-resp-2 (warning): delete names a resourceId
            assert a.get("type") != "delete" or ("resourceId" in a and "resource" not in a)
    for link in card.get("links", []):  # cds-resp-3
        assert link["type"] in {"absolute", "smart"}
        assert link["type"] == "smart" or "appContext" not in link
    # 2.0 "Use of JSON": OPTIONAL attributes without a value are omitted, never null / empty
    assert all(v is not None and v != "" and v != [] for v in card.values())
    for inv_id, expression, where in RESPONSE_INVARIANTS:
        nodes = {"card": [card], "overrideReasons": [reasons] if reasons else [],
                 "link": card.get("links", []),
                 "suggestion": card.get("suggestions", [])}[where]
        for node in nodes:
            assert _fp(expression, node), inv_id


def check_response(status: int, body: Any) -> None:
    """Any body the service answers: a 200 hook response, discovery, or an error."""
    if status == 200 and isinstance(body, dict) and "cards" in body:
        # 2.0 "HTTP Response": cards REQUIRED array; systemActions OPTIONAL array
        assert isinstance(body["cards"], list)
        assert set(body) <= {"cards", "systemActions"}
        for card in body["cards"]:
            check_card(card)
    elif status == 200 and isinstance(body, dict) and "services" in body:
        # 2.0 "Discovery": each service has hook, description and id (REQUIRED)
        for s in body["services"]:
            assert s["hook"]
            assert s["description"]
            assert s["id"]
            assert all(isinstance(v, str) for v in s.get("prefetch", {}).values())
    elif status >= 400:
        # dryneedle: every error is a FHIR OperationOutcome with at least one issue
        assert body["resourceType"] == "OperationOutcome"
        assert body["issue"]
        assert all(i["severity"] and i["code"] for i in body["issue"])


def check_feedback_request(body: dict[str, Any]) -> None:
    """A feedback body the tests send: 2.0 Feedback attributes and cds-fb-1 / cds-fb-3.

    cds-fb-2 ("accepted implies acceptedSuggestions") is not required of our clients:
    dryneedle's cards carry no suggestions, so "accepted" means the advice was followed.
    """
    assert isinstance(body["feedback"], list)
    for entry in body["feedback"]:
        assert entry["card"]
        assert entry["outcomeTimestamp"]
        assert _fp(FEEDBACK_INVARIANTS[0][1], entry)
        assert entry["outcome"] in {"accepted", "overridden"}
        if "overrideReason" in entry:
            reason = entry["overrideReason"]
            assert _fp(FEEDBACK_INVARIANTS[1][1], reason)
            assert "reason" in reason or "userComment" in reason
