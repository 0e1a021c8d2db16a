"""The Starlette application of the CDS Hooks service (:func:`create_app`).

What it is for: routes ``GET /cds-services`` (discovery), ``POST /cds-services/{id}`` (a hook
call), ``POST /cds-services/{id}/feedback`` and ``GET /openapi.json``; authenticates hook and
feedback calls (:class:`~._auth.JwtAuth`; without it every such call is refused with 401
unless the application is made with ``insecure_no_auth``, which then answers loopback clients
only); bounds bodies (:class:`~._limits.BodyLimitMiddleware`); runs screening, JWT checks,
FHIR fetches and audit writes in a bounded set of worker threads
(:class:`~._workers.WorkerThreads`), never on the event loop; records issued cards and feedback
in the audit log (before answering); serialises responses with orjson when installed
(:func:`~._workers.json_bytes`). The application's ``state.warm_up()`` runs each hook service
once on a request with no patient data (no fetch, nothing recorded), so that the first real
call does not pay for what is loaded on first use; ``dryneedle serve`` calls it before serving.

Hook calls (``POST /cds-services/{id}``, the hot path) go from the application's ``__call__``
straight to their handler, with the same body limits (:class:`~._limits.BodyLimits`), status
codes, headers and ``OperationOutcome`` bodies, and an unexpected error answered 500 as
Starlette's ``ServerErrorMiddleware`` answers it: Starlette's router, middleware layers,
``Request`` and ``Response`` objects cost about half the HTTP side's CPU of a call (measured in
``benchmarks/README.md``). With CORS configured (its headers, ``Vary: Origin`` even without an
``Origin``, come from Starlette's middleware) or under a ``root_path`` they go through
Starlette's stack to the same handler; every other request always does.

May import: the standard library, starlette (the ``service`` extra),
:mod:`dryneedle._version`, :mod:`dryneedle.fhir`, :mod:`dryneedle.policy` and this package.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Final

from dryneedle._version import __version__
from dryneedle.fhir import ALLERGY_TERMS, FLAG_CODES
from dryneedle.policy import DEFAULT_POLICY, Policy
from dryneedle.service._audit import AuditLog, UnknownCardError
from dryneedle.service._auth import AuthError, JwtAuth
from dryneedle.service._fetch import FhirFetcher
from dryneedle.service._hooks import (
    REQUIRED_PREFETCH,
    SERVICES,
    HookError,
    discovery,
    handle_hook,
    operation_outcome_error,
    parse_feedback,
)
from dryneedle.service._limits import (
    BodyLimitMiddleware,
    BodyLimits,
    Message,
    Receive,
    Scope,
    Send,
    refusal,
)
from dryneedle.service._openapi import openapi
from dryneedle.service._workers import WorkerThreads, json_bytes

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["LOOPBACK", "create_app"]

LOOPBACK: Final = frozenset({"127.0.0.1", "::1", "localhost"})
"""Host names and addresses that are the local machine."""


def _utc_today() -> date:
    return datetime.now(UTC).date()


def _timing(clock: Sequence[float], end: float) -> str:
    """Return the ``Server-Timing`` header value of a hook call (milliseconds).

    ``wait`` for a worker thread, ``work`` in it (authentication, screening, cards, audit),
    ``app`` in the handler, from the body received to the response built.
    """
    start, begun, done = clock
    return (f"wait;dur={1000 * (begun - start):.3f}, work;dur={1000 * (done - begun):.3f}, "
            f"app;dur={1000 * (end - start):.3f}")


def _warm_up_request(hook: str) -> dict[str, Any]:
    """A hook request with no patient data (every answer unknown), for the warm-up call."""
    empty = {"resourceType": "Bundle", "type": "searchset", "entry": []}
    context: dict[str, Any] = {"patientId": "warm-up", "userId": "Practitioner/warm-up"}
    if hook in ("order-select", "order-sign"):
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection", "entry": []}
        if hook == "order-select":
            context["selections"] = []
    elif hook == "appointment-book":
        context["appointments"] = {"resourceType": "Bundle", "type": "collection", "entry": []}
    return {
        "hook": hook, "hookInstance": "dryneedle-warm-up", "context": context,
        "prefetch": {"patient": {"resourceType": "Patient", "id": "warm-up"},
                     **{key: empty for key in REQUIRED_PREFETCH if key != "patient"}},
    }


def _header(scope: Scope, name: bytes) -> str | None:
    """The first value of header ``name`` (lower case) in ``scope``, as Starlette reads it."""
    for key, value in scope["headers"]:
        if key == name:
            result: str = value.decode("latin-1")
            return result
    return None


def _json_headers(status: int, content: bytes) -> list[tuple[bytes, bytes]]:
    """The raw headers of Starlette's ``JSONResponse(content, status)`` (no others given)."""
    if status < 200 or status in (204, 304):
        return [(b"content-type", b"application/json")]
    return [(b"content-length", str(len(content)).encode("latin-1")),
            (b"content-type", b"application/json")]


def _internal_error() -> tuple[Message, Message]:
    """What Starlette's ``ServerErrorMiddleware`` sends for an unexpected error."""
    return ({"type": "http.response.start", "status": 500, "headers": [
        (b"content-length", b"21"), (b"content-type", b"text/plain; charset=utf-8")]},
        {"type": "http.response.body", "body": b"Internal Server Error"})


Answer = tuple[int, list[tuple[bytes, bytes]], bytes]
"""A response: status, raw headers, body."""


class _HookEndpoint:
    """The hook calls, ``POST /cds-services/{id}``: an ASGI endpoint and a direct path.

    As the endpoint of Starlette's router it runs behind the middleware (CORS, body limits,
    error handling): when CORS is configured, or under a ``root_path``. Every other hook call
    takes :meth:`direct`, from the application's
    ``__call__``: the same body limits and answers, without the router, the middleware layers,
    ``Request`` or ``Response`` objects. The client sees the same answers either way.
    """

    __slots__ = ("_call", "_limits")

    def __init__(self, call: Callable[[Scope, bytes], Awaitable[Answer]],
                 limits: BodyLimits) -> None:
        self._call = call
        self._limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read the (already bounded) body as Starlette's ``Request.body()``, answer the call."""
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                from starlette.requests import ClientDisconnect  # noqa: PLC0415

                raise ClientDisconnect
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        status, headers, content = await self._call(scope, b"".join(chunks))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    async def direct(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read the body within the limits and answer, as the middleware and router would.

        A refused body gets the limits' answer (:func:`~._limits.refusal`); an unexpected
        error is answered 500 as Starlette's ``ServerErrorMiddleware`` answers it, then
        re-raised (the server logs it).
        """
        try:
            body = await self._limits.read_body(scope, receive)
            if body is None:
                return  # the client disconnected
            if type(body) is tuple:
                messages = refusal(*body)
            else:
                status, headers, content = await self._call(scope, body)  # type: ignore[arg-type]
                messages = ({"type": "http.response.start", "status": status, "headers": headers},
                            {"type": "http.response.body", "body": content})
        except Exception:
            for message in _internal_error():
                await send(message)
            raise
        await send(messages[0])
        await send(messages[1])


def create_app(
    policy: Policy = DEFAULT_POLICY,
    *,
    today: Callable[[], date] = _utc_today,
    required_prefetch: Sequence[str] = REQUIRED_PREFETCH,
    flag_codes: Mapping[str, Mapping[str, Sequence[str]]] = FLAG_CODES,
    allergy_terms: Sequence[str] = ALLERGY_TERMS,
    codes: Sequence[Mapping[str, Mapping[str, tuple[tuple[str, str | None], ...]]]] = (),
    always: bool = False,
    cors_origins: Sequence[str] = (),
    auth: JwtAuth | None = None,
    base_url: str | None = None,
    insecure_no_auth: bool = False,
    audit: AuditLog | None = None,
    fetcher: FhirFetcher | None = None,
    max_body: int = 1024 * 1024,
    body_timeout: float = 10.0,
    workers: int = 8,
    cpu_slots: int = 2,
    server_timing: bool = False,
) -> Starlette:
    """Return the Starlette application of the CDS Hooks 2.0 service.

    Args:
        policy: The screening policy.
        today: Returns today's date (default: UTC), read once per request.
        required_prefetch: Prefetch keys whose absence (when not fetchable) gives 412.
        flag_codes: Coded data that sets history answers.
        allergy_terms: Words marking a metal allergy.
        codes: A clinic's answer-code tables (``--codes FILE``), merged on top of the shipped
            ones.
        always: Return an ``info`` card even when there is nothing to say.
        cors_origins: Browser origins allowed to call the service (e.g. a CDS Hooks sandbox).
        auth: The JWT verifier of CDS clients; ``None`` refuses hook and feedback calls (401)
            unless ``insecure_no_auth``.
        base_url: The service's public URL (e.g. ``https://cds.example.org``): the JWT ``aud``
            must be ``{base_url}/cds-services/{id}``. Required with ``auth``.
        insecure_no_auth: Accept unauthenticated calls, from loopback clients only
            (development and tests).
        audit: Where issued cards and feedback are recorded; ``None`` records nothing and
            answers feedback with 503.
        fetcher: Fetches omitted prefetch data from ``fhirServer``; ``None`` never calls out.
        max_body: Largest request body in bytes (413 beyond).
        body_timeout: Seconds to receive a request body (408 beyond).
        workers: Requests handled at the same time (worker threads); others wait their turn.
        cpu_slots: Of those, requests computing at the same time (screening, cards, audit);
            a request waiting for ``fhirServer`` or a JWK Set gives its slot to the next.
        server_timing: Add a ``Server-Timing`` header to hook responses (``wait`` for a worker
            thread, ``work`` in it, ``app`` in the handler; milliseconds): how long the
            service itself took, as the load benchmark reports it.

    Returns:
        The ASGI application (serve it with uvicorn: ``dryneedle serve``).

    Raises:
        ImportError: When the ``service`` extra (starlette) is not installed.
        ValueError: With ``auth`` but no ``base_url``.
    """
    try:
        from starlette.applications import Starlette  # noqa: PLC0415
        from starlette.middleware import Middleware  # noqa: PLC0415
        from starlette.middleware.cors import CORSMiddleware  # noqa: PLC0415
        from starlette.requests import Request  # noqa: PLC0415
        from starlette.responses import JSONResponse as StarletteJSON  # noqa: PLC0415
        from starlette.responses import Response  # noqa: PLC0415
        from starlette.routing import Route  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - exercised without the extra
        msg = "the reference service needs the 'service' extra: pip install 'dryneedle[service]'"
        raise ImportError(msg) from exc
    if auth is not None and not base_url:
        msg = "JWT authentication needs the service's base_url (the JWT aud)"
        raise ValueError(msg)
    base = (base_url or "").rstrip("/")
    threads = WorkerThreads(workers, cpu_slots)

    class JSONResponse(StarletteJSON):
        """Starlette's JSON response, serialised by :func:`~._workers.json_bytes` (orjson)."""

        def render(self, content: Any) -> bytes:
            return json_bytes(content)

    def _authenticate(authorization: str | None, host: str | None,
                      audience: Sequence[str]) -> str | None:
        """Return the client (JWT ``iss``), or raise :class:`AuthError`."""
        if auth is not None:
            claims = auth.verify(authorization, audience)
            return str(claims["iss"])
        if not insecure_no_auth:
            raise AuthError("this service has no CDS client key configuration: it refuses "
                            "every call (configure JWT keys, or --insecure-no-auth on loopback)")
        if host not in LOOPBACK:
            raise AuthError("unauthenticated calls are accepted from loopback only", 403)
        return None

    def _error(exc: AuthError | HookError) -> Response:
        if isinstance(exc, HookError):
            return JSONResponse(exc.body, status_code=exc.status)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        return JSONResponse(operation_outcome_error(exc.status, str(exc)),
                            status_code=exc.status, headers=headers)

    def _host(request: Request) -> str | None:
        return request.client.host if request.client is not None else None

    # What every hook call is screened with (the warm-up's too).
    screening: dict[str, Any] = {
        "policy": policy, "today": today, "required_prefetch": required_prefetch,
        "flag_codes": flag_codes, "allergy_terms": allergy_terms, "always": always,
        "codes": codes}
    # Without keys and without insecure_no_auth every call is refused: a JWT is still required.
    authenticated = auth is not None or not insecure_no_auth
    # Constant documents are serialised once (bytes; a fresh Response per request).
    services_body = bytes(JSONResponse(discovery()).body)
    described: dict[date, bytes] = {}  # the description of the current day only

    async def services(request: Request) -> Response:
        return Response(services_body, media_type="application/json")

    async def describe(request: Request) -> Response:
        now = today()  # the description names the one accepted 'on': the service's date
        if now not in described:
            described.clear()
            described[now] = bytes(JSONResponse(openapi(
                base or None, authenticated=authenticated, today=now)).body)
        return Response(described[now], media_type="application/json")

    async def call(scope: Scope, body: bytes) -> Answer:
        """Answer a hook call: status, raw headers and body.

        The headers are those of the Starlette responses this handler answered with:
        ``content-length``, ``content-type``, then ``Server-Timing``; for a 401,
        ``www-authenticate`` first.
        """
        service_id: str = scope["path_params"]["service_id"]
        clock = [time.perf_counter()]  # entry; worker start; worker end
        authorization = _header(scope, b"authorization")
        client = scope.get("client")
        host = client[0] if client is not None else None

        def work() -> tuple[int, dict[str, Any]]:
            clock.append(time.perf_counter())
            try:
                return _work()
            finally:
                clock.append(time.perf_counter())

        def _work() -> tuple[int, dict[str, Any]]:
            client = _authenticate(authorization, host, [f"{base}/cds-services/{service_id}"])

            def record(cards: list[dict[str, Any]], req: Mapping[str, Any]) -> None:
                if audit is not None:
                    audit.record_cards(
                        cards, service=service_id, hook=str(req["hook"]),
                        hook_instance=str(req["hookInstance"]),
                        patient_id=str(req["context"]["patientId"]), version=__version__,
                        client=client)

            return handle_hook(
                service_id, body, fetch=fetcher.fetch if fetcher is not None else None,
                on_cards=record, **screening)

        try:
            status, payload = await threads.run(work)
        except AuthError as exc:
            response = _error(exc)
            return response.status_code, response.raw_headers, bytes(response.body)
        content = json_bytes(payload)
        headers = _json_headers(status, content)
        if server_timing:
            headers.append((b"server-timing",
                            _timing(clock, time.perf_counter()).encode("latin-1")))
        return status, headers, content

    hook_endpoint = _HookEndpoint(call, BodyLimits(max_body=max_body,
                                                   body_timeout=body_timeout))

    async def feedback(request: Request) -> Response:
        service_id = str(request.path_params["service_id"])
        body = await request.body()

        def work() -> int:
            own = f"{base}/cds-services/{service_id}"
            client = _authenticate(request.headers.get("authorization"), _host(request),
                                   [own, f"{own}/feedback"])
            entries = parse_feedback(service_id, body)
            if audit is None:
                raise HookError(503, "this service keeps no audit log: feedback not stored")
            try:
                return audit.record_feedback(entries, service=service_id, client=client)
            except UnknownCardError as exc:
                raise HookError(404, str(exc), ["feedback.card"]) from None

        try:
            stored = await threads.run(work)
        except (AuthError, HookError) as exc:
            return _error(exc)
        return JSONResponse({"stored": stored})

    middleware = [Middleware(BodyLimitMiddleware, max_body=max_body, body_timeout=body_timeout)]
    if cors_origins:
        middleware.insert(0, Middleware(
            CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        ))
    hook_route = Route("/cds-services/{service_id}", hook_endpoint, methods=["POST"])
    hook_path = hook_route.path_regex
    direct = not cors_origins  # CORS headers (even Vary: Origin) come from Starlette's stack

    class Service(Starlette):
        """The Starlette application, hook calls taken directly (see the module docstring)."""

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if (direct and scope["type"] == "http" and scope["method"] == "POST"
                    and not scope.get("root_path")
                    and (match := hook_path.match(scope["path"])) is not None):
                scope["app"] = self
                scope["path_params"] = {"service_id": match["service_id"]}
                await hook_endpoint.direct(scope, receive, send)
                return
            await super().__call__(scope, receive, send)

    app = Service(
        routes=[
            Route("/cds-services", services, methods=["GET"]),
            Route("/openapi.json", describe, methods=["GET"]),
            hook_route,
            Route("/cds-services/{service_id}/feedback", feedback, methods=["POST"]),
        ],
        middleware=middleware,
    )

    def warm_up() -> None:
        """Run each hook service once on a request without patient data (nothing recorded)."""
        for service in SERVICES:
            with contextlib.suppress(HookError):
                handle_hook(str(service["id"]), _warm_up_request(str(service["hook"])),
                            **screening)

    app.state.warm_up = warm_up
    return app
