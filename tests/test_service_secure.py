"""The CDS Hooks service over real HTTP on 127.0.0.1: JWT authentication, fetching from a FHIR
server, feedback and the audit log, the hooks with planned sites, and request limits.

Servers (the service, a FHIR test server, a JWK Set server) run under uvicorn on free loopback
ports in background threads, started and stopped by each fixture; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

uvicorn = pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")
jwt = pytest.importorskip("jwt")
pytest.importorskip("cryptography")

from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

import loopback  # noqa: E402
from cds_conformance import check_feedback_request, check_response  # noqa: E402
from dryneedle.cli import main  # noqa: E402
from dryneedle.service import (  # noqa: E402
    PREFETCH,
    AuditLog,
    FhirFetcher,
    JwtAuth,
    create_app,
)
from loopback import Server  # noqa: E402

TODAY = date(2026, 11, 27)
TIMEOUT = 10.0
ISS = "https://ehr.example.org/"
DATA = Path(__file__).parent / "data"
SYNTHEA = Path(__file__).parents[2] / "shared" / "fhir" / "synthea"


# --- a FHIR test server ------------------------------------------------------------------------


def _load_bundles(files: list[Path]) -> list[dict[str, Any]]:
    resources: list[dict[str, Any]] = []
    for f in files:
        for entry in json.loads(f.read_text(encoding="utf-8"))["entry"]:
            resources.append(entry["resource"])
    # A FHIR server turns the transaction's urn:uuid references into Type/id ones.
    ids = {r["id"]: r["resourceType"] for r in resources if "id" in r}
    text = json.dumps(resources)
    for rid, kind in ids.items():
        text = text.replace(f'"urn:uuid:{rid}"', f'"{kind}/{rid}"')
    loaded: list[dict[str, Any]] = json.loads(text)
    return loaded


def fhir_app(resources: list[dict[str, Any]], token: str, page_size: int = 5) -> Starlette:
    """A tiny FHIR search server: read, ``?patient=``, ``status``, ``code``, paging."""

    def mine(r: dict[str, Any], pid: str) -> bool:
        ref = (r.get("subject") or r.get("patient") or {}).get("reference")
        return bool(ref == f"Patient/{pid}")

    async def search(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {token}":
            return JSONResponse({"resourceType": "OperationOutcome", "issue": [
                {"severity": "error", "code": "login"}]}, status_code=401)
        kind = request.path_params["kind"]
        q = request.query_params
        if "rid" in request.path_params:
            hit = [r for r in resources if r["resourceType"] == kind
                   and r.get("id") == request.path_params["rid"]]
            return JSONResponse(hit[0]) if hit else JSONResponse({}, status_code=404)
        found = [r for r in resources if r["resourceType"] == kind and mine(r, q["patient"])]
        if "status" in q:
            found = [r for r in found if r.get("status") == q["status"]]
        if "code" in q:
            system, _, code = q["code"].partition("|")
            found = [r for r in found if {"system": system, "code": code} in [
                {"system": c.get("system"), "code": c.get("code")}
                for c in r.get("code", {}).get("coding", [])]]
        offset = int(q.get("_offset", "0"))
        page = found[offset:offset + page_size]
        bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset",
                                  "total": len(found),
                                  "entry": [{"resource": r} for r in page]}
        if offset + page_size < len(found):
            params = dict(q) | {"_offset": str(offset + page_size)}
            query = "&".join(f"{k}={v}" for k, v in params.items())
            bundle["link"] = [{"relation": "next",
                               "url": f"{request.base_url}fhir/{kind}?{query}"}]
        return JSONResponse(bundle)

    return Starlette(routes=[Route("/fhir/{kind}/{rid}", search),
                             Route("/fhir/{kind}", search)])


# --- keys and tokens ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    private = ec.generate_private_key(ec.SECP384R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    public |= {"kid": "ehr-1", "use": "sig", "alg": "ES384"}
    return {"private": private, "jwks": {"keys": [public]}}


def token(keys: dict[str, Any], aud: str, **over: Any) -> str:
    now = int(time.time())
    claims = {"iss": ISS, "aud": aud, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4())}
    headers = {"kid": "ehr-1", "typ": "JWT"} | over.pop("headers", {})
    claims |= over
    return str(jwt.encode(claims, keys["private"], algorithm="ES384", headers=headers))


def prefetch_all() -> dict[str, Any]:
    prefetch: dict[str, Any] = dict.fromkeys(PREFETCH)
    prefetch["patient"] = {"resourceType": "Patient", "id": "p-1", "gender": "female",
                           "birthDate": "1980-05-05"}
    return prefetch


def hook(hook_name: str, patient: str = "p-1", **extra: Any) -> dict[str, Any]:
    context = {"userId": "Practitioner/1", "patientId": patient} | extra.pop("context", {})
    return {"hook": hook_name, "hookInstance": str(uuid.uuid4()), "context": context,
            "prefetch": extra.pop("prefetch", prefetch_all()), **extra}


@pytest.fixture
def secured(keys: dict[str, Any], tmp_path: Path) -> Iterator[tuple[Server, AuditLog]]:
    audit = AuditLog(tmp_path / "audit.sqlite", hash_key=b"k")

    def factory(base: str) -> Any:
        return create_app(today=lambda: TODAY, base_url=base, audit=audit,
                          auth=JwtAuth(issuers=[ISS], jwks=keys["jwks"]))

    with Server(None, factory=factory) as server:
        yield server, audit
    audit.close()


def post(url: str, body: Any, bearer: str | None = None, **kw: Any) -> Any:
    headers = {"authorization": f"Bearer {bearer}"} if bearer else {}
    response = httpx.post(url, json=body, headers=headers, timeout=TIMEOUT, **kw)
    check_response(response.status_code, response.json())
    return response


# --- authentication -----------------------------------------------------------------------------


def test_signed_request_is_answered_and_audited(secured: Any, keys: Any) -> None:
    server, audit = secured
    url = f"{server.url}/cds-services/dryneedle-screening"
    response = post(url, hook("patient-view"), token(keys, url))
    assert response.status_code == 200
    (card,) = response.json()["cards"]
    (row,) = audit.rows("cards")
    assert row["uuid"] == card["uuid"]
    assert row["client"] == ISS
    assert row["patient_hash"]
    assert row["patient_hash"] != "p-1"
    assert "p-1" not in json.dumps(row)
    assert row["codes"] == card["extension"]["io.readthedocs.dryneedle"]["codes"]


@pytest.mark.parametrize("change", [
    "none", "garbage", "wrong-aud", "expired", "future-iat", "far-exp", "wrong-iss",
    "unknown-kid", "hs256", "alg-none", "jku-not-allowed", "no-jti",
])
def test_bad_tokens_are_refused(secured: Any, keys: Any, change: str) -> None:
    server, audit = secured
    url = f"{server.url}/cds-services/dryneedle-screening"
    now = int(time.time())
    bearer: str | None = {
        "none": None,
        "garbage": "not.a.jwt",
        "wrong-aud": token(keys, f"{server.url}/cds-services/other"),
        "expired": token(keys, url, exp=now - 120, iat=now - 400),
        "future-iat": token(keys, url, iat=now + 600, exp=now + 900),
        "far-exp": token(keys, url, exp=now + 86_400),
        "wrong-iss": token(keys, url, iss="https://evil.example/"),
        "unknown-kid": token(keys, url, headers={"kid": "other"}),
        "hs256": str(jwt.encode({"iss": ISS, "aud": url, "exp": now + 60, "iat": now,
                                 "jti": "x"}, "secret" * 8, algorithm="HS256",
                                headers={"kid": "ehr-1"})),
        "alg-none": str(jwt.encode({"iss": ISS, "aud": url, "exp": now + 60, "iat": now,
                                    "jti": "y"}, None, algorithm="none",
                                   headers={"kid": "ehr-1"})),
        "jku-not-allowed": token(keys, url, headers={"jku": "http://127.0.0.1:1/jwks"}),
        "no-jti": "",
    }[change]
    if change == "no-jti":
        claims = {"iss": ISS, "aud": url, "exp": now + 60, "iat": now}
        bearer = str(jwt.encode(claims, keys["private"], algorithm="ES384",
                                headers={"kid": "ehr-1"}))
    response = post(url, hook("patient-view"), bearer)
    assert response.status_code == 401
    assert list(audit.rows("cards")) == []


def test_replayed_token_is_refused(secured: Any, keys: Any) -> None:
    server, _ = secured
    url = f"{server.url}/cds-services/dryneedle-screening"
    bearer = token(keys, url)
    assert post(url, hook("patient-view"), bearer).status_code == 200
    assert post(url, hook("patient-view"), bearer).status_code == 401


def test_jku_from_the_allow_list_is_fetched_and_cached(keys: Any) -> None:
    calls: list[int] = []

    async def jwks(request: Request) -> JSONResponse:
        calls.append(1)
        return JSONResponse(keys["jwks"])

    with Server(Starlette(routes=[Route("/jwks", jwks)])) as key_server:
        jku = f"{key_server.url}/jwks"
        auth = JwtAuth(issuers=[ISS], jku_allowlist=[jku])
        aud = "https://cds.example.org/cds-services/dryneedle-screening"
        for _ in range(3):
            claims = auth.verify("Bearer " + token(keys, aud, headers={"jku": jku}), [aud])
            assert claims["iss"] == ISS
        assert calls == [1]


def test_without_keys_every_call_is_refused() -> None:
    with Server(create_app(today=lambda: TODAY)) as server:
        url = f"{server.url}/cds-services/dryneedle-screening"
        assert post(url, hook("patient-view")).status_code == 401
        assert httpx.get(f"{server.url}/cds-services", timeout=TIMEOUT).status_code == 200


def test_insecure_no_auth_refuses_a_public_host(capsys: Any) -> None:
    assert main(["serve", "--insecure-no-auth", "--host", "0.0.0.0"]) == 2
    assert "loopback" in capsys.readouterr().err


# --- fetching from fhirServer -------------------------------------------------------------------


class _fetching_service(Server):  # noqa: N801 - used like a function
    def __init__(self) -> None:
        self.fetcher = FhirFetcher(timeout=5.0)
        super().__init__(create_app(today=lambda: TODAY, insecure_no_auth=True,
                                    fetcher=self.fetcher))

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self.fetcher.close()


def test_omitted_prefetch_is_fetched_from_the_fhir_server() -> None:
    resources = _load_bundles([DATA / "fhir" / "realistic.json"])
    with Server(fhir_app(resources, "tok-1", page_size=2)) as fhir, _fetching_service() as svc:
        request = hook("patient-view", "p-001", prefetch={},
                       fhirServer=f"{fhir.url}/fhir",
                       fhirAuthorization={"access_token": "tok-1", "token_type": "Bearer",
                                          "expires_in": 300, "scope": "user/*.read",
                                          "subject": "dryneedle"})
        url = f"{svc.url}/cds-services/dryneedle-screening"
        response = post(url, request)
        assert response.status_code == 200
        (card,) = response.json()["cards"]
        assert card["indicator"] == "critical"
        assert "MedicationStatement/ms-antiplatelet" in card["detail"]
        request["fhirAuthorization"]["access_token"] = "wrong"
        assert post(url, request).status_code == 412  # neither prefetched nor fetchable
        request["prefetch"] = {"conditions": {"resourceType": "OperationOutcome", "issue": []}}
        request["fhirAuthorization"]["access_token"] = "tok-1"
        assert post(url, request).status_code == 200  # an OperationOutcome is fetched again


def test_a_slow_fhir_server_holds_up_no_other_call() -> None:
    """A call waiting for ``fhirServer`` gives its compute slot away (``cpu_slots=1``).

    The FHIR server answers only once the test lets it, after a call with its prefetch given
    has been answered: were the slot held during the fetch, that call would wait for it.
    """
    resources = _load_bundles([DATA / "fhir" / "realistic.json"])
    inner = fhir_app(resources, "tok-1")
    asked, release = threading.Event(), threading.Event()

    async def held(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            asked.set()
            deadline = time.monotonic() + TIMEOUT
            while not release.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        await inner(scope, receive, send)

    fetcher = FhirFetcher(timeout=TIMEOUT)
    app = create_app(today=lambda: TODAY, insecure_no_auth=True, fetcher=fetcher,
                     workers=4, cpu_slots=1)
    with Server(held) as fhir, Server(app) as svc, concurrent.futures.ThreadPoolExecutor(1) as ex:
        url = f"{svc.url}/cds-services/dryneedle-screening"
        fetching = ex.submit(post, url, hook(
            "patient-view", "p-001", prefetch={}, fhirServer=f"{fhir.url}/fhir",
            fhirAuthorization={"access_token": "tok-1", "token_type": "Bearer",
                               "expires_in": 300, "scope": "user/*.read",
                               "subject": "dryneedle"}))
        assert asked.wait(TIMEOUT)
        answered = post(url, hook("patient-view", prefetch=prefetch_all()))
        assert answered.status_code == 200
        assert not fetching.done()  # still waiting for the FHIR server
        release.set()
        assert fetching.result(TIMEOUT).status_code == 200
    fetcher.close()


@pytest.mark.parametrize("status", ["on-hold", "draft", "unknown"])
def test_a_prescription_not_active_is_fetched_and_read(status: str) -> None:
    """An on-hold, draft or unknown-status warfarin prescription is fetched and named.

    The prefetch template asks for every status: a ``status=active`` search would never bring
    them (review finding B3, SPEC section 8 1.1). On-hold and draft count as taking the drug;
    an unknown status leaves the answer unknown, and the card names the resource to check.
    """
    resources = [r for r in _load_bundles([DATA / "fhir" / "realistic.json"])
                 if r["resourceType"] == "Patient"]
    resources.append({
        "resourceType": "MedicationRequest", "id": "mr-held", "status": status,
        "intent": "order", "subject": {"reference": "Patient/p-001"},
        "medicationCodeableConcept": {"coding": [{
            "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "855332",
            "display": "warfarin sodium 5 MG Oral Tablet"}]}})
    with Server(fhir_app(resources, "tok-1", page_size=50)) as fhir, _fetching_service() as svc:
        request = hook("patient-view", "p-001", prefetch={},
                       fhirServer=f"{fhir.url}/fhir",
                       fhirAuthorization={"access_token": "tok-1"})
        response = post(f"{svc.url}/cds-services/dryneedle-screening", request)
        assert response.status_code == 200
        (card,) = response.json()["cards"]
        expected = "needs_review" if status == "unknown" else "not_eligible"
        assert card["extension"]["io.readthedocs.dryneedle"]["decision"] == expected
        assert "MedicationRequest/mr-held" in card["detail"]


@pytest.mark.skipif(not SYNTHEA.is_dir(), reason="shared Synthea bundles absent")
def test_synthea_patients_are_screened_from_the_fhir_server() -> None:
    files = sorted(SYNTHEA.glob("*.json"))[:6]
    resources = _load_bundles(files)
    patients = [r["id"] for r in resources if r["resourceType"] == "Patient"]
    with Server(fhir_app(resources, "tok", page_size=50)) as fhir, _fetching_service() as svc:
        for pid in patients:
            request = hook("patient-view", pid, prefetch={"patient": None},
                           fhirServer=f"{fhir.url}/fhir",
                           fhirAuthorization={"access_token": "tok"})
            request["prefetch"] = {}
            response = post(f"{svc.url}/cds-services/dryneedle-screening", request)
            assert response.status_code == 200
            (card,) = response.json()["cards"]
            assert card["indicator"] in {"warning", "critical"}  # never "eligible" by absence
            assert pid not in response.text


def test_null_prefetch_is_never_eligible() -> None:
    with _fetching_service() as svc:
        response = post(f"{svc.url}/cds-services/dryneedle-screening", hook("patient-view"))
        (card,) = response.json()["cards"]
        assert card["extension"]["io.readthedocs.dryneedle"]["decision"] == "needs_review"
        assert "Ask before needling" in card["detail"]
        assert len(card["detail"]) < 1500


# --- hooks with planned sites -------------------------------------------------------------------

ALL_NO = {"bleeding_disorder": False, "anticoagulant_therapy": False, "immunocompromised": False,
          "metal_allergy": False, "prior_adverse_reaction": False, "acute_illness": False,
          "epilepsy": False, "diabetes": False, "vascular_disease": False,
          "lymph_node_removal": False, "lymphoedema": False, "needle_phobia": "none",
          "consent": True, "unable_to_consent": False}


def _order(*sites: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
        "resourceType": "ServiceRequest", "id": "sr-1", "status": "draft", "intent": "order",
        "subject": {"reference": "Patient/p-1"}, "bodySite": list(sites)}}]}


SNOMED = "http://snomed.info/sct"


@pytest.mark.parametrize(("service", "hook_name", "key"), [
    ("dryneedle-screening-order-select", "order-select", "draftOrders"),
    ("dryneedle-screening-order-sign", "order-sign", "draftOrders"),
    ("dryneedle-screening-appointment-book", "appointment-book", "appointments"),
])
def test_snomed_sites_are_mapped_or_reviewed(service: str, hook_name: str, key: str) -> None:
    with _fetching_service() as svc:
        url = f"{svc.url}/cds-services/{service}"
        answers: dict[str, Any] = dict.fromkeys(_history_fields(), False) | {
            "needle_phobia": "none", "consent": True}
        # The clinician inspected the sites (SPEC §3 1.1: without it, the sites are unknown).
        ext = {"io.readthedocs.dryneedle": {"answers": answers, "site_findings": []}}
        deltoid = _order({"coding": [{"system": SNOMED, "code": "35259002"},
                                     {"system": SNOMED, "code": "7771000"}]})
        orders: Any = deltoid
        if key == "appointments":
            orders = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
                "resourceType": "Appointment", "status": "proposed",
                "contained": [deltoid["entry"][0]["resource"]]}}]}
        prefetch = prefetch_all()
        prefetch["patient"] |= {"gender": "male"}  # pregnancy does not apply
        response = post(url, hook(hook_name, context={key: orders}, extension=ext,
                                  prefetch=prefetch))
        assert response.json() == {"cards": []}  # the deltoid, mapped: nothing to say
        trapezius = _order({"coding": [{"system": SNOMED, "code": "31764008"}]})
        response = post(url, hook(hook_name, context={"draftOrders": trapezius,
                                                      "appointments": trapezius},
                                  extension=ext, prefetch=prefetch))
        (card,) = response.json()["cards"]
        # The unrecognised site is unknown (reviewed) and, as the only site, excluded.
        assert card["extension"]["io.readthedocs.dryneedle"]["decision"] in {
            "needs_review", "not_eligible"}
        assert "screening.unknown_answer" in card["extension"]["io.readthedocs.dryneedle"][
            "codes"]
        assert "`session.insertions[0].muscle`" in card["detail"]


def _history_fields() -> set[str]:
    import attrs  # noqa: PLC0415

    from dryneedle.model import History  # noqa: PLC0415

    return {a.name for a in attrs.fields(History)}


# --- feedback and the audit log -----------------------------------------------------------------


def test_feedback_is_stored_append_only_and_queryable(tmp_path: Path, capsys: Any) -> None:
    db = tmp_path / "audit.sqlite"
    audit = AuditLog(db)
    with Server(create_app(today=lambda: TODAY, insecure_no_auth=True, audit=audit)) as svc:
        base = f"{svc.url}/cds-services/dryneedle-screening"
        (card,) = post(base, hook("patient-view")).json()["cards"]
        reason = card["overrideReasons"][2]
        body = {"feedback": [
            {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp":
             "2026-11-27T10:05:31Z", "overrideReason": {
                 "reason": {"system": reason["system"], "code": reason["code"]},
                 "userComment": "Discussed with the patient."}},
            {"card": card["uuid"], "outcome": "accepted",
             "outcomeTimestamp": "2026-11-27T10:06:00.5Z"}]}
        check_feedback_request(body)
        response = post(f"{base}/feedback", body)
        assert response.json() == {"stored": 2}
        unknown = {"feedback": [{"card": str(uuid.uuid4()), "outcome": "accepted",
                                 "outcomeTimestamp": "2026-11-27T10:06:00Z"}]}
        assert post(f"{base}/feedback", unknown).status_code == 404
        bad: Any
        for bad in ({"feedback": []}, {"feedback": [{"card": card["uuid"], "outcome": "nope",
                                                     "outcomeTimestamp": "2026-11-27T10:06Z"}]},
                    {"feedback": [{"card": card["uuid"], "outcome": "overridden",
                                   "outcomeTimestamp": "2026-11-27T10:06:00Z",
                                   "overrideReason": {}}]}):
            assert post(f"{base}/feedback", bad).status_code == 400
    rows = list(audit.rows("feedback"))
    assert [r["outcome"] for r in rows] == ["overridden", "accepted"]
    assert rows[0]["reason_code"] == "clinician-judgement"
    assert rows[0]["codes"] == card["extension"]["io.readthedocs.dryneedle"]["codes"]
    assert rows[0]["fingerprint"] == card["extension"]["io.readthedocs.dryneedle"][
        "policy"]["fingerprint"]
    assert next(iter(audit.rows("cards")))["patient_hash"] is None  # no key: nothing stored
    audit.close()
    raw = sqlite3.connect(db)
    for sql in ("UPDATE feedback SET outcome = 'accepted'", "DELETE FROM feedback",
                "DELETE FROM cards", "UPDATE cards SET decision = 'eligible'"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            raw.execute(sql)
    raw.close()
    assert main(["audit", "stats", "--db", str(db)]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["feedback"] == {"accepted": 1, "overridden": 1}
    assert stats["override_reasons"] == {"clinician-judgement": 1}
    assert main(["audit", "list", "--db", str(db)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert main(["audit", "show", card["uuid"], "--db", str(db)]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["table"] for x in lines] == ["cards", "feedback", "feedback"]


# --- limits -------------------------------------------------------------------------------------


def _raw(port: int, data: bytes, *, wait: float = TIMEOUT) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(data)
        return loopback.read_all(s)


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_limits(http: str) -> None:
    if http == "httptools":
        pytest.importorskip("httptools")
    app = create_app(today=lambda: TODAY, insecure_no_auth=True, max_body=64 * 1024,
                     body_timeout=1.0)
    with Server(app, header_timeout=1.0, http=http) as svc:
        url = f"{svc.url}/cds-services/dryneedle-screening"
        big = httpx.post(url, content=b"{" + b" " * 100_000 + b"}", timeout=TIMEOUT,
                         headers={"content-type": "application/json"})
        assert big.status_code == 413
        check_response(413, big.json())

        def chunks() -> Iterator[bytes]:
            for _ in range(100):
                yield b" " * 4096

        chunked = httpx.post(url, content=chunks(), timeout=TIMEOUT)
        assert chunked.status_code == 413
        deep = httpx.post(url, content=b"[" * 100 + b"]" * 100, timeout=TIMEOUT)
        assert deep.status_code == 400
        check_response(400, deep.json())
        deeper = httpx.post(url, content=b"[" * 30_000 + b"]" * 30_000, timeout=TIMEOUT)
        assert deeper.status_code == 400
        start = time.monotonic()
        slow = _raw(svc.port, b"POST /cds-services/dryneedle-screening HTTP/1.1\r\n"
                    b"Host: x\r\nContent-Length: 100\r\n\r\n{")
        assert b" 408 " in slow.split(b"\r\n")[0]
        half = _raw(svc.port, b"POST /cds-services/dryneedle-screening HTTP/1.1\r\nHost: x\r\n")
        assert half == b"" or b"HTTP/1.1" not in half  # closed without an answer
        assert time.monotonic() - start < 6
        ok = httpx.post(url, json=hook("patient-view"), timeout=TIMEOUT)
        assert ok.status_code == 200


def test_uninspected_sites_are_reviewed_and_inspection_is_read() -> None:
    """No inspection (absent or null) leaves the planned sites unknown: never "nothing to say".

    A tattoo over the planned deltoid, given in the request's inspection, excludes the site.
    """
    with _fetching_service() as svc:
        url = f"{svc.url}/cds-services/dryneedle-screening-order-select"
        answers: dict[str, Any] = dict.fromkeys(_history_fields(), False) | {
            "needle_phobia": "none", "consent": True}
        deltoid = _order({"coding": [{"system": SNOMED, "code": "35259002"},
                                     {"system": SNOMED, "code": "7771000"}]})
        prefetch = prefetch_all()
        prefetch["patient"] |= {"gender": "male"}
        inspections: list[dict[str, Any]] = [{}, {"site_findings": None}]
        for inspection in inspections:
            ext = {"io.readthedocs.dryneedle": {"answers": answers} | inspection}
            response = post(url, hook("order-select", context={"draftOrders": deltoid},
                                      extension=ext, prefetch=prefetch))
            (card,) = response.json()["cards"]
            assert "needs review" in card["summary"]
            assert "site_findings" in card["detail"]
        tattoo: list[dict[str, Any]] = [
            {"region": "shoulder", "side": "left", "kind": "tattoo", "date": None}]
        ext = {"io.readthedocs.dryneedle": {"answers": answers, "site_findings": tattoo}}
        response = post(url, hook("order-select", context={"draftOrders": deltoid},
                                  extension=ext, prefetch=prefetch))
        (card,) = response.json()["cards"]
        assert "not eligible" in card["summary"]
        bad = {"io.readthedocs.dryneedle": {"answers": answers, "site_findings": [{"x": 1}]}}
        response = post(url, hook("order-select", context={"draftOrders": deltoid},
                                  extension=bad, prefetch=prefetch))
        assert response.status_code == 400
        assert response.json()["resourceType"] == "OperationOutcome"
