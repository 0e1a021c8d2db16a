"""The service exercised through its own OpenAPI description with schemathesis, over real HTTP.

The service runs under uvicorn on a free 127.0.0.1 port; schemathesis loads ``/openapi.json``
from it (``schemathesis.openapi.from_url``) and, for every operation, generates requests from
the documented schemas -- the documented examples first, then valid and invalid ones -- and
checks each response: no 5xx, a documented status code, a documented content type and a body
that conforms to the documented schema; invalid data must be refused (4xx). This runs with JWT
authentication on (a fresh signed token per request; a request without one must be refused)
and with ``insecure_no_auth``. Bounded: the documented examples and eight generated requests
per operation and mode, derandomized, no shrinking (a few seconds each run).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("jwt")
schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cds_conformance import check_response  # noqa: E402
from dryneedle.service import AuditLog, HookError, JwtAuth, create_app, parse_json  # noqa: E402
from loopback import ISS, ClientKeys, Server  # noqa: E402

pytestmark = pytest.mark.slow

EXAMPLES = 8
"""Generated requests per operation and generation mode (after the documented examples)."""
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
FEEDBACK = "/cds-services/dryneedle-screening/feedback"
"""The one feedback endpoint exercised: the four share their schema and handler (and generating
feedback bodies is the slow part)."""


def valid_data_is_not_malformed(ctx: Any, response: Any, case: Any) -> None:
    """A request the description calls valid is never answered 400 (the description is exact:
    it documents what the service accepts); 401/404/412 remain possible answers."""
    if response.status_code == 400:
        raise AssertionError(f"valid request refused: {response.text[:500]}")


def _run(url: str, headers: Callable[[str], dict[str, str]], extra: list[Any]) -> Counter[Any]:
    """Exercise every operation of the served description; return the (method, status) seen."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", timeout=10)
    statuses: Counter[Any] = Counter()

    def exercise(strategy: Any, count: int, checks: list[Any]) -> None:
        @settings(max_examples=count, deadline=None, derandomize=True, database=None,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def test(case: Any) -> None:
            target = f"{url}{case.formatted_path}"
            response = case.call_and_validate(base_url=url, headers=headers(target),
                                              checks=checks, timeout=10)
            statuses[case.method.lower(), response.status_code] += 1
            if case.formatted_path.startswith("/cds-services/") and \
                    response.headers.get("content-type", [""])[0].startswith("application/json"):
                check_response(response.status_code, response.json())

        test()

    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path.endswith("/feedback") and operation.path != FEEDBACK:
            continue
        post = operation.method == "post"
        checks = CHECKS + (extra if post else [])
        for example in operation.get_strategies_from_examples():  # the documented ones
            exercise(example, 1, [*checks, valid_data_is_not_malformed])
        exercise(operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                 EXAMPLES if post else 1, [*checks, valid_data_is_not_malformed])
        if post:  # a GET without parameters has no invalid form
            exercise(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE), EXAMPLES,
                     [*checks, negative_data_rejection])
    return statuses


def _enough(statuses: Counter[Any]) -> None:
    """Many requests were made, and the documented examples were answered with cards."""
    assert sum(statuses.values()) > 40, statuses
    assert statuses["post", 200] >= 4, statuses  # a 200 per hook: the card schema was checked
    assert statuses["post", 400] > 0, statuses


def test_openapi_conformance_with_jwt(tmp_path: Path) -> None:
    keys = ClientKeys()
    audit = AuditLog(tmp_path / "audit.sqlite", hash_key=b"k")

    def factory(base: str) -> Any:
        return create_app(base_url=base, audit=audit,
                          auth=JwtAuth(issuers=[ISS], jwks=keys.jwks))

    def bearer(target: str) -> dict[str, str]:
        aud = target.removesuffix("/feedback")
        return {"Authorization": f"Bearer {keys.token(aud)}"}

    try:
        with Server(None, factory=factory) as server:
            _enough(_run(server.url, bearer, [ignored_auth]))
    finally:
        audit.close()


def test_openapi_conformance_insecure_no_auth(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "audit.sqlite", hash_key=b"k")
    try:
        with Server(create_app(insecure_no_auth=True, audit=audit)) as server:
            _enough(_run(server.url, lambda _: {}, []))
    finally:
        audit.close()


# --- what schemathesis found (regressions) ------------------------------------------------------


def test_malformed_requests_are_400_before_missing_data_is_412() -> None:
    import httpx  # noqa: PLC0415 - with the service extra

    base = {"hook": "patient-view", "hookInstance": "1", "context": {"patientId": "p"}}
    bad = [
        base | {"extension": {"io.readthedocs.dryneedle": {"on": True}}},
        base | {"extension": {"io.readthedocs.dryneedle": {"sites": "neck"}}},
        base | {"extension": "\u00ae9"},  # schemathesis: a non-object extension was ignored
        base | {"extension": [{"io.readthedocs.dryneedle": {}}]},
        base | {"prefetch": {"pregnancy": "no"}},
        base | {"prefetch": {"medications": False}},
        base | {"fhirServer": ""},
        base | {"fhirServer": 3},
    ]
    with Server(create_app(insecure_no_auth=True)) as server:
        url = f"{server.url}/cds-services/dryneedle-screening"
        for body in bad:
            response = httpx.post(url, json=body, timeout=10)
            assert response.status_code == 400, body
            check_response(400, response.json())
        assert httpx.post(url, json=base, timeout=10).status_code == 412


def test_the_description_says_whether_a_jwt_is_required() -> None:
    import httpx  # noqa: PLC0415 - with the service extra

    keys = ClientKeys()
    apps = {"insecure": create_app(insecure_no_auth=True), "refusing": create_app(),
            "jwt": create_app(base_url="https://cds.example.org",
                              auth=JwtAuth(issuers=[ISS], jwks=keys.jwks))}
    for name, app in apps.items():
        with Server(app) as server:
            doc = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
        post = doc["paths"]["/cds-services/dryneedle-screening"]["post"]
        assert post["security"] == ([] if name == "insecure" else [{"cdsClientJwt": []}])
        assert post["requestBody"]["content"]["application/json"]["schema"]["properties"][
            "hook"] == {"const": "patient-view"}


def _nesting(value: Any, depth: int = 0) -> int:
    if isinstance(value, dict):
        return max((_nesting(v, depth + 1) for v in value.values()), default=depth + 1)
    if isinstance(value, list):
        return max((_nesting(v, depth + 1) for v in value), default=depth + 1)
    return depth


_TEXT = st.text(alphabet='[]{}"\\nu ab\u005b', max_size=8)


@settings(max_examples=300)
@given(value=st.recursive(st.none() | _TEXT | st.integers(),
                          lambda c: st.lists(c, max_size=3) | st.dictionaries(_TEXT, c, max_size=3),
                          max_leaves=20), ascii_only=st.booleans())
def test_nesting_is_measured_on_the_raw_text(value: Any, ascii_only: bool) -> None:
    """The depth limit is checked on the bytes before parsing (cheap: the profile showed the
    tree walk at a fifth of a hook call); it agrees with the parsed value's nesting, brackets
    and escapes inside strings included."""
    text = json.dumps(value, ensure_ascii=ascii_only).encode()
    depth = _nesting(value)
    assert parse_json(text, max_depth=depth) == value
    if depth:
        with pytest.raises(HookError, match="nested deeper"):
            parse_json(text, max_depth=depth - 1)


# --- adversarial review (regressions) -----------------------------------------------------------


def _b64(data: bytes) -> str:
    import base64  # noqa: PLC0415

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_an_alg_of_another_key_type_is_401_not_500() -> None:
    """kid / alg confusion: an RS256 (or ES256, EdDSA) header naming the ES384 key's kid."""
    import httpx  # noqa: PLC0415 - with the service extra

    keys = ClientKeys()
    with Server(None, factory=lambda base: create_app(
            base_url=base, auth=JwtAuth(issuers=[ISS], jwks=keys.jwks))) as server:
        url = f"{server.url}/cds-services/dryneedle-screening"
        now = int(time.time())
        claims = _b64(json.dumps({"iss": ISS, "aud": url, "exp": now + 60, "iat": now,
                                  "jti": "j"}).encode())
        for alg in ("RS256", "PS256", "ES256", "EdDSA"):
            header = _b64(json.dumps({"alg": alg, "kid": "ehr-1", "typ": "JWT"}).encode())
            response = httpx.post(url, json={}, timeout=10,
                                  headers={"authorization": f"Bearer {header}.{claims}.AAAA"})
            assert response.status_code == 401, (alg, response.text)
            check_response(401, response.json())
        good = httpx.post(url, timeout=10, json={"hook": "patient-view", "hookInstance": "1",
                                                 "context": {"patientId": "p"}},
                          headers={"authorization": f"Bearer {keys.token(url)}"})
        assert good.status_code == 412  # authenticated; the data is missing
