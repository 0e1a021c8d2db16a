"""What the service writes on the wire, and the direct path of hook calls.

* Each response is written with **one** ``transport.write`` (one ``send()``, one TCP segment
  on loopback): the head is held until the body (``_server._OneWrite``). Checked over real
  HTTP on both protocols by counting the writes that reach the connection's transport, and
  every other path still sends complete responses in order: ``HEAD``, errors of the limits
  (413 / 400 / 408), of the protocol (400 / 431 / 503), pipelined requests, a large body,
  ``Expect: 100-continue``, a streaming application that sends its head and then waits, an
  application that fails after its head.
* ``POST /cds-services/{id}`` skips Starlette's router and middleware (``create_app``'s
  direct path): for the same requests it sends the same ASGI messages as Starlette's own
  stack (reached with ``Starlette.__call__``), errors included.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from datetime import date
from typing import Any

import pytest

uvicorn = pytest.importorskip("uvicorn")
pytest.importorskip("starlette")

from starlette.applications import Starlette  # noqa: E402

import loopback  # noqa: E402
from dryneedle.service import REQUIRED_PREFETCH, AuditLog, JwtAuth, create_app  # noqa: E402

TODAY = date(2026, 11, 27)
TIMEOUT = 10.0
HOOK = "/cds-services/dryneedle-screening"
REQUEST = json.dumps({
    "hook": "patient-view", "hookInstance": "0c6d0e44-6a1a-4c2e-9a53-3b1f2f7b1f00",
    "context": {"patientId": "p1"}, "prefetch": dict.fromkeys(REQUIRED_PREFETCH),
}).encode()


def _protocols() -> list[Any]:
    try:
        import httptools  # noqa: F401, PLC0415
    except ImportError:  # pragma: no cover - without httptools
        return ["h11", pytest.param("httptools", marks=pytest.mark.skip("no httptools"))]
    return ["h11", "httptools"]


@pytest.fixture(params=_protocols())
def http(request: Any) -> str:
    return str(request.param)


class _Counted:
    """A connection's transport that records what is written to it (non-empty writes)."""

    def __init__(self, transport: Any, writes: list[bytes]) -> None:
        self._transport = transport
        self._writes = writes

    def write(self, data: Any) -> None:
        if data:
            self._writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class Server(loopback.Server):
    """The service under :func:`server_config`, the writes of each connection recorded."""

    def __init__(self, app: Any = None, **limits: Any) -> None:
        super().__init__(app or create_app(today=lambda: TODAY, insecure_no_auth=True),
                         **limits)
        self.writes: list[list[bytes]] = []  # by connection, in connection order
        base = self.server.config.http
        writes = self.writes

        class Counting(base):  # type: ignore[misc, valid-type]
            def connection_made(self, transport: Any) -> None:
                writes.append([])
                super().connection_made(_Counted(transport, writes[-1]))

        self.server.config.http = Counting

    def exchange(self, data: bytes, *, pause: float = 0.0) -> tuple[bytes, list[bytes]]:
        """Send ``data`` on a new connection; everything received, and the writes made."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT) as s:
            s.sendall(data)
            if pause:
                time.sleep(pause)
            answer = loopback.read_all(s)
        time.sleep(0.05)  # the server's side of the close
        return answer, self.writes[-1]


def _post(path: str = HOOK, body: bytes = REQUEST, *, headers: bytes = b"") -> bytes:
    return (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: "
            b"application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n" +
            headers + b"Connection: close\r\n\r\n" + body)


def _responses(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Split a byte stream into complete ``Content-Length`` responses (asserting each is)."""
    found = []
    while data:
        head, sep, data = data.partition(b"\r\n\r\n")
        assert sep, head
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        size = int(headers.get("content-length", "0"))
        assert len(data) >= size, (status, headers, len(data))
        found.append((status, headers, data[:size]))
        data = data[size:]
    return found


def _one_write_each(writes: list[bytes], answer: bytes) -> None:
    assert b"".join(writes) == answer
    assert [r[0] for r in _responses(answer)] == [r[0] for w in writes for r in _responses(w)]


def test_a_hook_call_and_its_errors_are_written_at_once(http: str) -> None:
    """A card answer, an OperationOutcome (412, bad JSON), the body limits' early answers, a
    404, a 405: one write each, the complete response."""
    with Server(create_app(today=lambda: TODAY, insecure_no_auth=True, max_body=4096),
                http=http) as svc:
        bad_length = (b"POST " + HOOK.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Length: 12\r\nContent-Length: x\r\nConnection: close\r\n\r\n")
        for sent, status in (
            (_post(), 200),
            (_post(body=b'{"hook": "patient-view"}'), 400),
            (_post(body=json.dumps({
                "hook": "patient-view", "hookInstance": "i", "context": {"patientId": "p"},
                "prefetch": {}}).encode()), 412),
            (_post(body=b"{" * 10), 400),
            (_post(body=b"x" * 5000), 413),  # announced: answered before the body is read
            (_post("/cds-services/nothing-here"), 404),
            (_post("/nowhere"), 404),
            (b"GET " + HOOK.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
             405),
            (b"GET /cds-services HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200),
        ):
            answer, writes = svc.exchange(sent)
            [(got, headers, body)] = _responses(answer)
            assert got == status, answer[:300]
            assert len(writes) == 1, (status, writes)
            assert writes[0] == answer
            if status != 405 and sent.startswith(b"POST /cds"):
                assert headers["content-type"] == "application/json"
                json.loads(body)
        if http == "httptools":  # h11 answers a doubled Content-Length itself (400)
            answer, writes = svc.exchange(bad_length)
            assert [r[0] for r in _responses(answer)] == [400]
            assert len(writes) == 1


def test_head_keep_alive_and_pipelined_responses(http: str) -> None:
    """``HEAD`` (a head and no body), then pipelined requests on one connection: each response
    in one write, in order, complete."""
    with Server(http=http) as svc:
        head = b"HEAD /cds-services HTTP/1.1\r\nHost: x\r\n\r\n"
        get = b"GET /cds-services HTTP/1.1\r\nHost: x\r\n\r\n"
        post = _post().replace(b"Connection: close\r\n", b"")
        last = b"GET /openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        with socket.create_connection(("127.0.0.1", svc.port), timeout=TIMEOUT) as s:
            s.sendall(head)
            first = s.recv(65536)
            assert first.startswith(b"HTTP/1.1 200 ")
            assert first.endswith(b"\r\n\r\n")
            assert b"content-length: " in first.lower()
            s.sendall(get + post + get + last)
            rest = loopback.read_all(s)
        time.sleep(0.05)
        writes = svc.writes[-1]
        assert writes[0] == first
        statuses = [r[0] for r in _responses(rest)]
        assert statuses == [200, 200, 200, 200]
        assert len(writes) == 5
        _one_write_each(writes[1:], rest)


def test_a_large_body_follows_its_head(http: str) -> None:
    """A body over 64 KiB is not copied onto its head: two writes, the response complete."""
    body = b"x" * 300_000

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    with Server(app, http=http) as svc:
        answer, writes = svc.exchange(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    [(status, _, got)] = _responses(answer)
    assert status == 200
    assert got == body
    assert len(writes) == 2
    assert writes[1] == body


def test_the_protocols_own_answers_follow_a_response(http: str) -> None:
    """After a response on a connection, a request head over the cap (431 httptools, 400 h11)
    or a malformed one (400): the response, complete, then the protocol's answer."""
    big = b"GET /cds-services HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000  # never ends
    with Server(http=http, max_header_bytes=4096) as svc:
        for second, status in ((big, 431 if http == "httptools" else 400),
                               (b"NOT HTTP AT ALL\r\n\r\n", 400)):
            with socket.create_connection(("127.0.0.1", svc.port), timeout=TIMEOUT) as s:
                s.sendall(b"GET /cds-services HTTP/1.1\r\nHost: x\r\n\r\n")
                first = s.recv(65536)
                s.sendall(second)
                rest = loopback.read_all(s)
            time.sleep(0.05)
            assert [r[0] for r in _responses(first)] == [200]
            assert rest.startswith(b"HTTP/1.1 %d " % status), rest[:200]  # h11's is chunked
            assert svc.writes[-1][0] == first  # the response in one write
            assert b"".join(svc.writes[-1]) == first + rest


def test_connections_over_the_limit_get_a_complete_503(http: str) -> None:
    with Server(http=http, max_connections=2) as svc:
        idle = [socket.create_connection(("127.0.0.1", svc.port), timeout=TIMEOUT)
                for _ in range(2)]
        try:
            time.sleep(0.2)
            answer, writes = svc.exchange(
                b"GET /cds-services HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        finally:
            for s in idle:
                s.close()
    assert [r[0] for r in _responses(answer)] == [503]
    assert writes == [answer]


def test_slow_bodies_get_a_complete_408(http: str) -> None:
    with Server(create_app(today=lambda: TODAY, insecure_no_auth=True, body_timeout=0.3),
                http=http) as svc:
        answer, writes = svc.exchange(_post()[:-10], pause=0.6)
    [(status, headers, body)] = _responses(answer)
    assert status == 408
    assert headers["connection"] == "close"
    assert json.loads(body)["issue"][0]["code"] == "timeout"
    assert writes == [answer]


def test_expect_100_continue_is_answered_before_the_response(http: str) -> None:
    """The ``100 Continue`` is written when the application reads the body; the response after
    it, complete."""
    with Server(http=http) as svc, \
            socket.create_connection(("127.0.0.1", svc.port), timeout=TIMEOUT) as s:
        head, _, body = _post(headers=b"Expect: 100-continue\r\n").partition(b"\r\n\r\n")
        s.sendall(head + b"\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 100 ")
        s.sendall(body)
        answer = loopback.read_all(s)
    assert [r[0] for r in _responses(answer)] == [200]


def test_a_streamed_head_is_sent_before_the_body_arrives(http: str) -> None:
    """An application that sends its head, then waits before its (chunked) body: the head is
    written at the event loop's next turn, not held until the body."""
    gate = threading.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        for _ in range(int(TIMEOUT / 0.01)):
            if gate.is_set():
                break
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"one", "more_body": True})
        await send({"type": "http.response.body", "body": b"two"})

    with Server(app, http=http) as svc, \
            socket.create_connection(("127.0.0.1", svc.port), timeout=TIMEOUT) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head = s.recv(65536)  # before the body: the gate is still closed
        assert head.startswith(b"HTTP/1.1 200 ")
        assert head.endswith(b"\r\n\r\n")
        assert not gate.is_set()
        gate.set()
        rest = loopback.read_all(s)
    assert b"one" in rest
    assert rest.endswith(b"two\r\n0\r\n\r\n")


def test_an_application_failing_after_its_head_sends_the_head_then_closes(http: str) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"10")]})
        raise RuntimeError("after the head")

    with Server(app, http=http) as svc:
        answer, writes = svc.exchange(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b"\r\n\r\n")
    assert writes == [answer]


# -- the direct path of hook calls: the same ASGI messages as Starlette's stack ---------------


def _scope(path: str, body: bytes, headers: list[tuple[bytes, bytes]], *,
           client: str = "127.0.0.1", root_path: str = "") -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1", "method": "POST", "scheme": "http", "path": path,
            "raw_path": path.encode(), "root_path": root_path, "query_string": b"",
            "server": ("127.0.0.1", 8080), "client": (client, 50000),
            "headers": [(b"host", b"x"), *headers,
                        (b"content-length", str(len(body)).encode())]}


async def _call(app: Any, scope: dict[str, Any], chunks: list[bytes],
                *, through_starlette: bool) -> tuple[list[Any], BaseException | None]:
    """The messages ``app`` sends for one request (its body in ``chunks``), and its error."""
    pending = list(chunks)
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        if pending:
            chunk = pending.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(pending)}
        await asyncio.sleep(TIMEOUT)
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    call: Any = Starlette.__call__ if through_starlette else type(app).__call__
    try:
        await call(app, dict(scope), receive, send)
    except Exception as exc:
        return sent, exc
    return sent, None


def _comparable(messages: list[Any]) -> list[Any]:
    """The messages, ``Server-Timing`` durations blanked (they differ from call to call)."""
    out = []
    for sent in messages:
        message = dict(sent)
        if "headers" in message:
            message["headers"] = [(k, b"..." if k == b"server-timing" else bytes(v))
                                  for k, v in message["headers"]]
        if "body" in message:
            message["body"] = bytes(message["body"])
        out.append(message)
    return out


def _failing_today() -> date:
    raise RuntimeError("no date today")


def test_the_direct_path_sends_what_starlette_sends(tmp_path: Any) -> None:
    keys = loopback.ClientKeys()
    base = "https://cds.example.org"
    apps = {
        "open": create_app(today=lambda: TODAY, insecure_no_auth=True, server_timing=True,
                           max_body=2048, audit=AuditLog(tmp_path / "audit.sqlite")),
        "jwt": create_app(today=lambda: TODAY, base_url=base,
                          auth=JwtAuth(issuers=[loopback.ISS], jwks=keys.jwks)),
        "closed": create_app(today=lambda: TODAY),
        "failing": create_app(today=_failing_today, insecure_no_auth=True),
        "cors": create_app(today=lambda: TODAY, insecure_no_auth=True,
                           cors_origins=["https://sandbox.example.org"]),
    }
    body = REQUEST
    token = keys.token(f"{base}{HOOK}")
    cases: list[tuple[str, dict[str, Any], list[bytes]]] = [
        ("open", _scope(HOOK, body, []), [body]),
        ("open", _scope(HOOK, body, []), [body[:50], body[50:100], body[100:]]),  # streamed
        ("open", _scope(HOOK, body, [], client="192.0.2.7"), [body]),  # 403: not loopback
        ("open", _scope("/cds-services/unknown", body, []), [body]),  # 404 OperationOutcome
        ("open", _scope(HOOK, b"{", []), [b"{"]),
        ("open", _scope(HOOK, b"x" * 3000, []), [b"x" * 3000]),  # 413 announced
        ("open", _scope(HOOK, b"", [(b"content-length", b"x")]), [b""]),  # 400
        ("jwt", _scope(HOOK, body, []), [body]),  # 401, WWW-Authenticate
        ("jwt", _scope(HOOK, body, [(b"authorization", f"Bearer {token}".encode())]), [body]),
        ("closed", _scope(HOOK, body, []), [body]),  # 401: no keys configured
        ("cors", _scope(HOOK, body, []), [body]),  # Starlette's path: Vary: Origin
        ("failing", _scope(HOOK, body, []), [body]),  # 500, then the error is raised
    ]
    for name, scope, chunks in cases:
        app = apps[name]
        if name == "jwt":  # a token is accepted once (jti): a fresh one for each path
            scope["headers"] = [(k, f"Bearer {keys.token(f'{base}{HOOK}')}".encode()
                                 if k == b"authorization" else v) for k, v in scope["headers"]]
        direct, error = asyncio.run(_call(app, scope, chunks, through_starlette=False))
        if name == "jwt":
            scope["headers"] = [(k, f"Bearer {keys.token(f'{base}{HOOK}')}".encode()
                                 if k == b"authorization" else v) for k, v in scope["headers"]]
        routed, routed_error = asyncio.run(_call(app, scope, chunks, through_starlette=True))
        assert _comparable(direct) == _comparable(routed), (name, scope["path"])
        assert type(error) is type(routed_error), (name, error, routed_error)
        assert len(direct) == 2, direct
    statuses = []
    for name, scope, chunks in cases:
        if name == "jwt":
            continue
        sent, error = asyncio.run(_call(apps[name], scope, chunks, through_starlette=False))
        statuses.append(sent[0]["status"])
        if name == "failing":
            assert isinstance(error, RuntimeError)
            assert bytes(sent[1]["body"]) == b"Internal Server Error"
    assert statuses == [200, 200, 403, 404, 400, 413, 400, 401, 200, 500]


def test_the_direct_path_keeps_server_timing_and_skips_nothing_else() -> None:
    app = create_app(today=lambda: TODAY, insecure_no_auth=True, server_timing=True)
    sent, error = asyncio.run(_call(app, _scope(HOOK, REQUEST, []), [REQUEST],
                                    through_starlette=False))
    assert error is None
    names = [k for k, _ in sent[0]["headers"]]
    assert names == [b"content-length", b"content-type", b"server-timing"]
    timing = dict(sent[0]["headers"])[b"server-timing"].decode()
    assert [part.split(";")[0] for part in timing.split(", ")] == ["wait", "work", "app"]


def test_cors_and_root_path_requests_take_starlettes_path() -> None:
    """With CORS configured the answer carries the CORS headers; under a ``root_path`` the
    route is matched on the path below it."""
    origin = b"https://sandbox.example.org"
    app = create_app(today=lambda: TODAY, insecure_no_auth=True, cors_origins=[origin.decode()])
    sent, error = asyncio.run(_call(app, _scope(HOOK, REQUEST, [(b"origin", origin)]),
                                    [REQUEST], through_starlette=False))
    assert error is None
    assert sent[0]["status"] == 200
    assert dict(sent[0]["headers"])[b"access-control-allow-origin"] == origin
    sent, error = asyncio.run(_call(app, _scope(HOOK, REQUEST, []), [REQUEST],
                                    through_starlette=False))
    assert error is None
    assert dict(sent[0]["headers"])[b"vary"] == b"Origin"
    plain = create_app(today=lambda: TODAY, insecure_no_auth=True)
    sent, error = asyncio.run(_call(plain, _scope("/api" + HOOK, REQUEST, [], root_path="/api"),
                                    [REQUEST], through_starlette=False))
    assert error is None
    assert sent[0]["status"] == 200
    assert "cards" in json.loads(sent[1]["body"])


def test_the_body_deadline_is_a_408_and_a_cancellation_stays_one() -> None:
    """:class:`BodyLimits` under asyncio: a body not complete in time is refused with 408; a
    cancellation from outside is not taken for the deadline."""
    from dryneedle.service._limits import BodyLimits  # noqa: PLC0415

    limits = BodyLimits(max_body=100, body_timeout=0.2)
    scope = _scope(HOOK, b"x" * 10, [])

    async def stalled() -> dict[str, Any]:
        await asyncio.sleep(TIMEOUT)
        return {"type": "http.disconnect"}

    async def run() -> tuple[Any, bool]:
        timed_out = await limits.read_body(scope, stalled)
        task = asyncio.ensure_future(limits.read_body(scope, stalled))
        await asyncio.sleep(0.05)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return timed_out, True
        return timed_out, False

    timed_out, cancelled = asyncio.run(run())
    assert timed_out == (408, "request body not received within 0.2 s")
    assert cancelled
