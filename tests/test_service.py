"""The reference CDS Hooks service (``dryneedle.service``) over real HTTP.

The application runs under uvicorn on 127.0.0.1 (a free port) in a background thread and is
called with a real HTTP client (httpx). Cards are checked against the CDS Hooks 2.0 card
attributes (``cds-hooks-2.0``). Every network wait is bounded; the server is shut down cleanly.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import attrs
import pytest

from dryneedle.fhir import ATC, EXT_BODY_SIDE, SYSTEMS
from dryneedle.model import History
from dryneedle.policy import GUIDELINE_POLICY
from dryneedle.service import PREFETCH, REQUIRED_PREFETCH, SERVICES, discovery, handle_hook

uvicorn = pytest.importorskip("uvicorn")
pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx")

from cds_conformance import check_card, check_response  # noqa: E402
from dryneedle.service import create_app  # noqa: E402 - after the optional-extra checks

DATA = Path(__file__).parent / "data" / "fhir"
TODAY = date(2026, 11, 27)
TIMEOUT = 10.0
NOT_ASKED = ("needle_phobia", "consent")


def _history_names() -> list[str]:
    return [a.name for a in attrs.fields(History) if a.name not in NOT_ASKED]


ALL_NO: dict[str, Any] = dict.fromkeys(_history_names(), False) | {
    "needle_phobia": "none", "consent": True}


class _Server:
    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="none",
                                http="h11", loop="asyncio")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run,
                                       kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + TIMEOUT
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                pytest.fail("the service did not start")
            time.sleep(0.01)
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=TIMEOUT)
        self.sock.close()
        assert not self.thread.is_alive(), "the service did not stop"


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """The reference service on a free local port (the evaluation date fixed for the tests)."""
    with _Server(create_app(today=lambda: TODAY, insecure_no_auth=True)) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[Any]:
    """A real HTTP client with bounded timeouts."""
    with httpx.Client(base_url=base_url, timeout=TIMEOUT) as c:
        yield c


def _searchset(resources: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not resources:
        return None  # CDS Hooks: no data is null, not an empty bundle
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources]}


def prefetch_from(bundle_file: str, patient_id: str) -> dict[str, Any]:
    """Answer our prefetch templates from a bundle, as a FHIR server would for the patient."""
    resources = [e["resource"] for e in
                 json.loads((DATA / bundle_file).read_text(encoding="utf-8"))["entry"]]

    def mine(r: dict[str, Any]) -> bool:
        ref = r.get("subject", r.get("patient", {})).get("reference")
        return bool(ref == f"Patient/{patient_id}")

    def of(kind: str) -> list[dict[str, Any]]:
        return [r for r in resources if r["resourceType"] == kind and mine(r)]

    pregnancy = [r for r in of("Observation")
                 if {"system": "http://loinc.org", "code": "82810-3"}
                 in r["code"].get("coding", [])]
    return {
        "patient": next(r for r in resources if r["resourceType"] == "Patient"),
        "conditions": _searchset(of("Condition")),
        "medicationStatements": _searchset(of("MedicationStatement")),
        "medicationRequests": _searchset(of("MedicationRequest")),
        "allergies": _searchset(of("AllergyIntolerance")),
        "pregnancy": _searchset(pregnancy),
        "procedures": _searchset(of("Procedure")),
    }


def hook_request(hook: str, patient_id: str, prefetch: dict[str, Any],
                 **extra: Any) -> dict[str, Any]:
    """A CDS Hooks 2.0 request."""
    context: dict[str, Any] = {"userId": "Practitioner/pr-1", "patientId": patient_id}
    context |= extra.pop("context", {})
    return {"hook": hook, "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "fhirServer": "https://ehr.example.org/fhir", "context": context,
            "prefetch": prefetch, **extra}


# --- discovery --------------------------------------------------------------------------------


def test_discovery(client: Any) -> None:
    """GET /cds-services lists both services, one hook each, with the prefetch templates."""
    response = client.get("/cds-services")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    services = response.json()["services"]
    assert [(s["id"], s["hook"]) for s in services] == [
        ("dryneedle-screening", "patient-view"),
        ("dryneedle-screening-order-select", "order-select"),
        ("dryneedle-screening-order-sign", "order-sign"),
        ("dryneedle-screening-appointment-book", "appointment-book")]
    check_response(200, response.json())
    for s in services:
        assert s["description"]
        assert s["prefetch"] == dict(PREFETCH)
        assert set(REQUIRED_PREFETCH) <= set(s["prefetch"])
    assert response.json() == discovery()
    assert PREFETCH["pregnancy"].endswith("code=http://loinc.org|82810-3")
    assert PREFETCH["patient"] == "Patient/{{context.patientId}}"
    # Every status: on-hold, draft or unknown prescriptions bear on the answer (review B3).
    assert PREFETCH["medicationRequests"] == "MedicationRequest?patient={{context.patientId}}"
    assert "medicationRequests" in REQUIRED_PREFETCH
    assert "medicationStatements" not in REQUIRED_PREFETCH


# --- patient-view -----------------------------------------------------------------------------


def test_patient_view_realistic_bundle(client: Any) -> None:
    """A realistic prefetch gives one critical card with its basis and the source resources."""
    request = hook_request("patient-view", "p-001", prefetch_from("realistic.json", "p-001"))
    response = client.post("/cds-services/dryneedle-screening", json=request)
    assert response.status_code == 200
    (card,) = response.json()["cards"]
    check_card(card)
    assert card["indicator"] == "critical"
    assert card["summary"] == (
        "Dry needling: not eligible (anticoagulant or antiplatelet therapy, metal allergy)")
    assert "MedicationStatement/ms-antiplatelet" in card["detail"]
    assert "`screening.metal_allergy`" in card["detail"]
    assert "p-001" not in response.text  # no patient identifier in what we send back
    again = client.post("/cds-services/dryneedle-screening", json=request)
    assert again.content == response.content  # byte-for-byte reproducible


def test_null_prefetch_is_unknown_not_no(client: Any) -> None:
    """Prefetch keys present with null (no data) give unknown answers: needs review."""
    prefetch = dict.fromkeys(PREFETCH)
    prefetch["patient"] = {"resourceType": "Patient", "id": "p-7", "gender": "female",
                           "birthDate": "1990-02-03"}
    response = client.post("/cds-services/dryneedle-screening",
                           json=hook_request("patient-view", "p-7", prefetch))
    assert response.status_code == 200
    (card,) = response.json()["cards"]
    check_card(card)
    assert card["indicator"] == "warning"
    assert card["summary"].startswith("Dry needling: needs review, 13 answers unknown")


def test_missing_required_prefetch_is_412(client: Any) -> None:
    """Without a required prefetch key (and no fhirAuthorization to fetch it) the answer is 412.

    MedicationStatement is optional (US Core EHRs expose MedicationRequest only).
    """
    prefetch = prefetch_from("realistic.json", "p-001")
    del prefetch["medicationRequests"]
    response = client.post("/cds-services/dryneedle-screening",
                           json=hook_request("patient-view", "p-001", prefetch))
    assert response.status_code == 412
    check_response(412, response.json())
    assert [i["expression"] for i in response.json()["issue"]] == [
        ["prefetch.medicationRequests"]]
    outcome = prefetch_from("realistic.json", "p-001")
    outcome["conditions"] = {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "forbidden"}]}  # the client could not run the query
    response = client.post("/cds-services/dryneedle-screening",
                           json=hook_request("patient-view", "p-001", outcome))
    assert response.status_code == 412
    del prefetch["medicationStatements"]
    prefetch["medicationRequests"] = None
    assert client.post("/cds-services/dryneedle-screening", json=hook_request(
        "patient-view", "p-001", prefetch)).status_code == 200
    no_prefetch = hook_request("patient-view", "p-001", {})
    del no_prefetch["prefetch"]
    assert client.post("/cds-services/dryneedle-screening",
                       json=no_prefetch).status_code == 412


def test_nothing_to_say_gives_empty_cards(client: Any) -> None:
    """An eligible patient (answers from the intake form) gives an empty cards array."""
    prefetch = dict.fromkeys(PREFETCH)
    prefetch["patient"] = {"resourceType": "Patient", "id": "p-8", "gender": "male",
                           "birthDate": "1975-07-07"}
    request = hook_request("patient-view", "p-8", prefetch,
                           extension={"io.readthedocs.dryneedle": {"answers": ALL_NO}})
    response = client.post("/cds-services/dryneedle-screening", json=request)
    assert response.status_code == 200
    assert response.json() == {"cards": []}


def test_the_service_screens_as_of_its_own_date(client: Any) -> None:
    """The evaluation date is the service's today (its injectable clock), never the client's:
    an 11-year-old is excluded today, is a minor on the clock's later day, and a client's
    ``on`` other than the service's date is refused (400) rather than ageing the child."""
    prefetch = dict.fromkeys(PREFETCH)
    prefetch["patient"] = {"resourceType": "Patient", "id": "p-9", "gender": "male",
                           "birthDate": "2014-12-01"}
    ext = {"answers": ALL_NO}
    today = client.post("/cds-services/dryneedle-screening", json=hook_request(
        "patient-view", "p-9", prefetch, extension={"io.readthedocs.dryneedle": ext}))
    (card,) = today.json()["cards"]
    assert card["indicator"] == "critical"  # 11 years old on the fixed today
    assert "on 2026-11-27" in card["detail"]
    same = client.post("/cds-services/dryneedle-screening", json=hook_request(
        "patient-view", "p-9", prefetch,
        extension={"io.readthedocs.dryneedle": ext | {"on": TODAY.isoformat()}}))
    assert same.status_code == 200  # the service's own date is tolerated
    assert same.json()["cards"][0]["indicator"] == "critical"
    for other in ("2026-12-01", "2099-01-01", "2026-11-26"):
        refused = client.post("/cds-services/dryneedle-screening", json=hook_request(
            "patient-view", "p-9", prefetch,
            extension={"io.readthedocs.dryneedle": ext | {"on": other}}))
        assert refused.status_code == 400, other
        check_response(400, refused.json())
        (issue,) = refused.json()["issue"]
        assert issue["expression"] == ["extension.io.readthedocs.dryneedle.on"]
        assert "2026-11-27" in issue["diagnostics"]
    with _Server(create_app(today=lambda: date(2026, 12, 1), insecure_no_auth=True)) as url:
        later = httpx.post(f"{url}/cds-services/dryneedle-screening", timeout=TIMEOUT,
                           json=hook_request("patient-view", "p-9", prefetch,
                                             extension={"io.readthedocs.dryneedle": ext}))
    (card,) = later.json()["cards"]
    assert card["indicator"] == "warning"  # 12 on the service's later today
    assert "minor" in card["summary"]
    assert "on 2026-12-01" in card["detail"]


# --- order-select -----------------------------------------------------------------------------


def _draft_orders(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": r} for r in resources]}


def _needling_order(muscle: str, side: str) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest", "id": "sr-1", "status": "draft", "intent": "order",
        "code": {"text": "Dry needling"}, "subject": {"reference": "Patient/p-10"},
        "bodySite": [{
            "extension": [{"url": EXT_BODY_SIDE, "valueCode": side}],
            "coding": [{"system": SYSTEMS["muscle"], "code": muscle}],
        }],
    }


def _order_select(*drafts: dict[str, Any]) -> dict[str, Any]:
    prefetch = dict.fromkeys(PREFETCH)
    prefetch["patient"] = {"resourceType": "Patient", "id": "p-10", "gender": "male",
                           "birthDate": "1975-07-07"}
    return hook_request(
        "order-select", "p-10", prefetch,
        context={"selections": ["ServiceRequest/sr-1"], "draftOrders": _draft_orders(*drafts)},
        extension={"io.readthedocs.dryneedle": {"answers": ALL_NO}},
    )


def test_order_select_plans_sites_from_draft_orders(client: Any) -> None:
    """A draft needling order over the lung gives an eligible-with-precautions card."""
    response = client.post("/cds-services/dryneedle-screening-order-select",
                           json=_order_select(_needling_order("upper_trapezius", "left")))
    assert response.status_code == 200
    (card,) = response.json()["cards"]
    check_card(card)
    assert card["indicator"] == "warning"
    assert "`screening.over_lung_site`" in card["detail"]
    assert "`session.insertions[0]`" in card["detail"]


def test_order_select_draft_anticoagulant(client: Any) -> None:
    """A draft antithrombotic order counts: deep psoas stays excluded even under guideline."""
    draft_med = {"resourceType": "MedicationRequest", "id": "mr-draft", "status": "draft",
                 "intent": "order", "subject": {"reference": "Patient/p-10"},
                 "medicationCodeableConcept": {"coding": [{"system": ATC, "code": "B01AF"}]}}
    request = _order_select(_needling_order("psoas", "left"), draft_med)
    status, body = handle_hook("dryneedle-screening-order-select", request,
                               policy=GUIDELINE_POLICY, today=lambda: TODAY)
    assert status == 200
    (card,) = body["cards"]
    assert card["indicator"] == "critical"
    assert "screening.bleeding_risk_site" in card["extension"]["io.readthedocs.dryneedle"]["codes"]
    response = client.post("/cds-services/dryneedle-screening-order-select", json=request)
    assert response.json()["cards"][0]["indicator"] == "critical"  # default policy


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "body", "status"), [
    ("/cds-services/nope", {}, 404),
    ("/cds-services/dryneedle-screening", "not json", 400),
    ("/cds-services/dryneedle-screening", [], 400),
    ("/cds-services/dryneedle-screening",
     {"hook": "order-select", "hookInstance": "x", "context": {"patientId": "p"}}, 400),
    ("/cds-services/dryneedle-screening",
     {"hook": "patient-view", "hookInstance": "x", "context": {}}, 400),
    ("/cds-services/dryneedle-screening",
     {"hook": "patient-view", "context": {"patientId": "p"}}, 400),
    ("/cds-services/dryneedle-screening",
     {"hook": "patient-view", "hookInstance": "x", "context": {"patientId": "p"},
      "prefetch": dict.fromkeys(PREFETCH, 7)}, 400),
    ("/cds-services/dryneedle-screening",
     {"hook": "patient-view", "hookInstance": "x", "context": {"patientId": "p"},
      "prefetch": dict.fromkeys(PREFETCH),
      "extension": {"io.readthedocs.dryneedle": {"on": "27/11/2026"}}}, 400),
])
def test_malformed_requests(client: Any, path: str, body: Any, status: int) -> None:
    """Malformed requests get a 4xx JSON error, never a 500."""
    content = body if isinstance(body, str) else json.dumps(body)
    response = client.post(path, content=content,
                           headers={"content-type": "application/json"})
    assert response.status_code == status
    check_response(status, response.json())
    assert response.json()["issue"][0]["diagnostics"]


def test_the_description_names_the_one_accepted_date(client: Any) -> None:
    """``/openapi.json`` documents ``on`` as the service's own date (a const), so tools that
    generate requests from it never send another one."""
    doc = client.get("/openapi.json").json()
    for service in SERVICES:
        schema = doc["paths"][f"/cds-services/{service['id']}"]["post"]["requestBody"][
            "content"]["application/json"]["schema"]
        on = schema["properties"]["extension"]["properties"]["io.readthedocs.dryneedle"][
            "properties"]["on"]
        assert on["const"] == TODAY.isoformat()
        assert "400" in on["description"]


def test_server_timing_header_is_opt_in() -> None:
    """``server_timing`` adds ``Server-Timing`` (wait, work, app; milliseconds) to hook
    responses; without it there is none."""
    prefetch = dict.fromkeys(PREFETCH)
    prefetch["patient"] = {"resourceType": "Patient", "id": "p-1", "gender": "male",
                           "birthDate": "1975-07-07"}
    request = hook_request("patient-view", "p-1", prefetch)
    with _Server(create_app(today=lambda: TODAY, insecure_no_auth=True,
                            server_timing=True)) as url:
        response = httpx.post(f"{url}/cds-services/dryneedle-screening", json=request,
                              timeout=TIMEOUT)
    assert response.status_code == 200
    parts = dict(p.strip().split(";dur=") for p in response.headers["server-timing"].split(","))
    assert set(parts) == {"wait", "work", "app"}
    durations = {k: float(v) for k, v in parts.items()}
    assert 0 < durations["work"] <= durations["app"]
    assert durations["wait"] >= 0
    with _Server(create_app(today=lambda: TODAY, insecure_no_auth=True)) as url:
        response = httpx.post(f"{url}/cds-services/dryneedle-screening", json=request,
                              timeout=TIMEOUT)
    assert "server-timing" not in response.headers


def test_clock_read_once_per_request() -> None:
    """The evaluation date is read once at the request boundary, also when ``on`` is given
    (it is checked against the service's date, never used instead of it)."""
    calls: list[int] = []

    def today() -> date:
        calls.append(1)
        return TODAY

    prefetch = dict.fromkeys(PREFETCH)
    prefetch["patient"] = {"resourceType": "Patient", "id": "p-1", "gender": "male"}
    handle_hook("dryneedle-screening", hook_request("patient-view", "p-1", prefetch),
                today=today)
    assert calls == [1]
    status, _ = handle_hook("dryneedle-screening", hook_request(
        "patient-view", "p-1", prefetch,
        extension={"io.readthedocs.dryneedle": {"on": "2026-01-01"}}), today=today)
    assert (status, calls) == (400, [1, 1])
    status, _ = handle_hook("dryneedle-screening", hook_request(
        "patient-view", "p-1", prefetch,
        extension={"io.readthedocs.dryneedle": {"on": TODAY.isoformat()}}), today=today)
    assert (status, calls) == (200, [1, 1, 1])


def test_services_constant_matches_discovery() -> None:
    """The SERVICES constant is the discovery document."""
    assert discovery() == {"services": [dict(s) for s in SERVICES]}


def _plain_request(**extension: Any) -> dict[str, Any]:
    prefetch = dict.fromkeys(PREFETCH)
    prefetch["patient"] = {"resourceType": "Patient", "id": "p-1", "gender": "male",
                           "birthDate": "1975-07-07"}
    return hook_request("patient-view", "p-1", prefetch,
                        extension={"io.readthedocs.dryneedle": extension})


def test_extension_sites() -> None:
    """Planned sites may come from the request extension (side defaults to midline)."""
    status, body = handle_hook("dryneedle-screening", _plain_request(
        answers=ALL_NO, sites=[{"muscle": "upper_trapezius", "side": "left"},
                               {"muscle": "deltoid"}]), today=lambda: TODAY)
    assert status == 200
    (card,) = body["cards"]
    # SPEC 1.1 §3/§8: no inspection given and FHIR cannot prove the sites clear: review.
    assert card["summary"] == (
        "Dry needling: needs review, 1 answer unknown (planned site overlies the lung)")


@pytest.mark.parametrize("extension", [
    {"sites": "upper_trapezius"},
    {"sites": [{"side": "left"}]},
    {"sites": [{"muscle": "deltoid", "side": "up"}]},
    {"answers": ["diabetes"]},
    {"answers": {"diabetes": "yes"}},
])
def test_extension_errors(extension: dict[str, Any]) -> None:
    """A malformed dryneedle extension is a 400 with a message."""
    status, body = handle_hook("dryneedle-screening", _plain_request(**extension),
                               today=lambda: TODAY)
    assert status == 400
    check_response(status, body)
    assert body["issue"][0]["diagnostics"]


def test_extension_must_be_an_object() -> None:
    """The dryneedle extension value must be an object; other extensions are ignored."""
    request = _plain_request()
    request["extension"] = {"io.readthedocs.dryneedle": 3, "com.example.other": {"x": 1}}
    assert handle_hook("dryneedle-screening", request, today=lambda: TODAY)[0] == 400
    request["extension"] = {"com.example.other": {"x": 1}}
    assert handle_hook("dryneedle-screening", request, today=lambda: TODAY)[0] == 200
