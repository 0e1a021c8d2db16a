"""Connection-level limits of ``dryneedle serve`` (:func:`dryneedle.service.server_config`),
over both HTTP protocols it runs with: uvicorn's httptools one (the default when httptools is
installed) and its h11 one (the fallback).

Each test runs the service under uvicorn on a free loopback port in a background thread and
talks raw HTTP/1.1 to it; every wait is bounded.
"""

from __future__ import annotations

import gc
import socket
import sys
import threading
import time
from datetime import date
from typing import Any

import pytest

uvicorn = pytest.importorskip("uvicorn")
pytest.importorskip("starlette")

import loopback  # noqa: E402
from dryneedle.service import _server, create_app, server_config  # noqa: E402

TODAY = date(2026, 11, 27)
TIMEOUT = 10.0
DISCOVERY = b"GET /cds-services HTTP/1.1\r\nHost: x\r\n"


def _protocols() -> list[Any]:
    try:
        import httptools  # noqa: F401, PLC0415
    except ImportError:  # pragma: no cover - without httptools
        return ["h11", pytest.param("httptools", marks=pytest.mark.skip("no httptools"))]
    return ["h11", "httptools"]


@pytest.fixture(params=_protocols())
def http(request: Any) -> str:
    return str(request.param)


class Server(loopback.Server):
    """The service (by default: unauthenticated on loopback) under :func:`server_config`."""

    def __init__(self, app: Any = None, **limits: Any) -> None:
        super().__init__(app or create_app(today=lambda: TODAY, insecure_no_auth=True),
                         **limits)

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT)


def _status(answer: bytes) -> int | None:
    line = answer.split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) > 1 and line[0].startswith(b"HTTP/") else None


def test_auto_is_httptools_when_installed_else_h11(monkeypatch: Any) -> None:
    app = create_app(insecure_no_auth=True)
    chosen = server_config(app).http
    if "httptools" in sys.modules or _protocols() == ["h11", "httptools"]:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # noqa: PLC0415

        assert issubclass(chosen, HttpToolsProtocol)
    monkeypatch.setitem(sys.modules, "httptools", None)  # as if not installed
    from uvicorn.protocols.http.h11_impl import H11Protocol  # noqa: PLC0415

    assert issubclass(server_config(app).http, H11Protocol)
    with pytest.raises(ImportError):
        server_config(app, http="httptools")


def test_a_head_over_the_cap_is_refused(http: str) -> None:
    """Request line + headers over ``max_header_bytes``: refused and closed (h11: 400 for an
    incomplete head; httptools: 431, also for a complete one), never passed to the app."""
    with Server(max_header_bytes=4096, http=http) as svc:
        for sent in (DISCOVERY + b"X-Big: " + b"a" * 8000,  # incomplete, over the cap
                     DISCOVERY + b"X-Big: a\r\n" * 1000):  # many small fields
            with svc.connect() as s:
                s.sendall(sent)
                answer = loopback.read_all(s)
            assert _status(answer) in (400, 431), answer[:80]
        if http == "httptools":  # complete (one read) and over the cap
            with svc.connect() as s:
                s.sendall(DISCOVERY + b"X-Big: " + b"a" * 8000 + b"\r\n\r\n")
                assert _status(loopback.read_all(s)) == 431
        with svc.connect() as s:  # under the cap: answered
            s.sendall(DISCOVERY + b"X-Ok: " + b"a" * 2000 + b"\r\nConnection: close\r\n\r\n")
            assert _status(loopback.read_all(s)) == 200


def test_a_head_sent_byte_by_byte_past_the_cap_is_refused(http: str) -> None:
    with Server(max_header_bytes=2048, http=http) as svc, svc.connect() as s:
        s.sendall(DISCOVERY + b"X-Big: ")
        answer = b""
        for _ in range(300):
            try:
                s.sendall(b"a" * 16)
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.001)
        answer = loopback.read_all(s)
        assert _status(answer) == (431 if http == "httptools" else 400)


def test_keep_alive_requests_and_the_idle_timeout(http: str) -> None:
    """Several requests on one connection (also pipelined), then closed once idle."""
    with Server(keep_alive=1, header_timeout=5.0, http=http) as svc, svc.connect() as s:
        s.sendall(DISCOVERY + b"\r\n")
        first = s.recv(65536)
        assert _status(first) == 200
        s.sendall((DISCOVERY + b"\r\n") * 2)  # pipelined
        time.sleep(0.3)
        start = time.monotonic()
        rest = loopback.read_all(s)
        assert rest.count(b"HTTP/1.1 200 ") == 2
        assert time.monotonic() - start < 4  # closed by the 1 s keep-alive timeout


def test_header_timeout_closes_a_half_sent_head_but_not_a_slow_answer(http: str) -> None:
    """The deadline runs while no request is in progress: a pipelined request answered after
    it (its headers arrived in time) is not cut."""
    gate = threading.Event()
    calls: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        import anyio  # noqa: PLC0415

        calls.append(1)
        if len(calls) > 1:  # the second request: answered after the header timeout
            await anyio.to_thread.run_sync(gate.wait, TIMEOUT)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    with Server(app, header_timeout=0.5, http=http) as svc:
        with svc.connect() as s:
            start = time.monotonic()
            s.sendall(DISCOVERY)  # the blank line never comes
            assert loopback.read_all(s) == b""
            assert time.monotonic() - start < 3
        with svc.connect() as s:
            s.sendall(DISCOVERY + b"\r\n" + DISCOVERY + b"Connection: close\r\n\r\n")
            time.sleep(1.2)  # more than the header timeout, in the application
            gate.set()
            answers = loopback.read_all(s)
        assert answers.count(b"HTTP/1.1 200 ") == 2, answers


def test_connections_over_the_limit_get_503(http: str) -> None:
    with Server(max_connections=3, http=http) as svc:
        idle = [svc.connect() for _ in range(3)]
        try:
            time.sleep(0.2)
            with svc.connect() as s:
                s.sendall(DISCOVERY + b"Connection: close\r\n\r\n")
                assert _status(loopback.read_all(s)) == 503
        finally:
            for s in idle:
                s.close()
        time.sleep(0.2)
        with svc.connect() as s:
            s.sendall(DISCOVERY + b"Connection: close\r\n\r\n")
            assert _status(loopback.read_all(s)) == 200


def test_the_access_log_is_opt_in(http: str, capsys: Any) -> None:
    line = '"GET /cds-services HTTP/1.1" 200'
    for access_log, lines in ((False, 0), (True, 1)):
        with Server(http=http, access_log=access_log, log_level="info") as svc:
            capsys.readouterr()
            with svc.connect() as s:
                s.sendall(DISCOVERY + b"Connection: close\r\n\r\n")
                assert _status(loopback.read_all(s)) == 200
        captured = capsys.readouterr()
        assert (captured.out + captured.err).count(line) == lines


def test_serve_passes_the_access_log_and_http_options(monkeypatch: Any, tmp_path: Any) -> None:
    import dryneedle.service  # noqa: PLC0415
    from dryneedle.cli import main  # noqa: PLC0415

    seen: list[dict[str, Any]] = []

    def serve(factory: Any, **kw: Any) -> int:
        seen.append(kw)
        return 0

    monkeypatch.setattr(dryneedle.service, "serve", serve)
    db = str(tmp_path / "audit.sqlite")
    assert main(["serve", "--insecure-no-auth", "--audit-db", db]) == 0
    assert main(["serve", "--insecure-no-auth", "--audit-db", db, "--access-log",
                 "--http", "h11", "--switch-interval", "0.5"]) == 0
    assert [kw["access_log"] for kw in seen] == [False, True]
    assert [kw["http"] for kw in seen] == ["auto", "h11"]
    assert [kw["switch_interval"] for kw in seen] == [_server.SWITCH_INTERVAL, 0.0005]
    for bad in ("0", "-1", "1001"):
        assert main(["serve", "--insecure-no-auth", "--audit-db", db,
                     "--switch-interval", bad]) == 2
    assert len(seen) == 2
    assert {kw["log_level"] for kw in seen} == {"info"}  # "Started server process" is logged


def test_a_built_application_leaves_the_long_lived_objects_out_of_the_collector() -> None:
    """The application is built, then what the process holds is frozen (gc.freeze)."""
    made: list[object] = []

    def factory() -> object:
        made.append(object())
        return made[-1]

    gc.unfreeze()
    interval = sys.getswitchinterval()
    try:
        assert gc.get_freeze_count() == 0
        app = _server._built(factory, 0.0015)
        assert app is made[0]
        assert gc.get_freeze_count() > 1000  # the modules, tables and policy of this process
        assert sys.getswitchinterval() == pytest.approx(0.0015)  # then threads switch sooner
        sys.setswitchinterval(0.004)
        _server._built(factory, None)  # None: the interpreter's interval is kept
        assert sys.getswitchinterval() == pytest.approx(0.004)
    finally:
        gc.unfreeze()
        sys.setswitchinterval(interval)


def test_a_built_application_is_warmed_up_before_it_serves() -> None:
    """``_built`` calls the application's ``state.warm_up`` once, before freezing."""
    calls: list[int] = []

    class State:
        def warm_up(self) -> None:
            calls.append(gc.get_freeze_count())

    class App:
        state = State()

    gc.unfreeze()
    interval = sys.getswitchinterval()
    try:
        app = App()
        assert _server._built(lambda: app, None) is app
        assert calls == [0]  # once, and before the freeze (what it loads is frozen too)
        assert _server._built(object, None) is not None  # an application without one
    finally:
        gc.unfreeze()
        sys.setswitchinterval(interval)


def test_the_warm_up_runs_every_hook_service_and_records_nothing(tmp_path: Any,
                                                                 monkeypatch: Any) -> None:
    """Each hook service is run once, on a request without patient data; no card is stored,
    nothing is fetched, and the service then answers as it would have."""
    from dryneedle.service import AuditLog, _app, _hooks, handle_hook  # noqa: PLC0415

    audit = AuditLog(tmp_path / "audit.sqlite")
    fetched: list[object] = []

    class Fetcher:
        def fetch(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - must not run
            fetched.append(args)
            raise AssertionError("the warm-up fetched")

    app = create_app(today=lambda: TODAY, insecure_no_auth=True, audit=audit,
                     fetcher=Fetcher())  # type: ignore[arg-type]
    seen: list[str] = []

    def spy(service_id: str, body: Any, **kw: Any) -> Any:
        seen.append(service_id)
        status, payload = handle_hook(service_id, body, **kw)
        assert status == 200
        # no data: every answer unknown, so never "eligible" (fails closed)
        assert payload["cards"][0]["indicator"] == "warning"
        return status, payload

    monkeypatch.setattr(_app, "handle_hook", spy)
    app.state.warm_up()
    monkeypatch.undo()
    assert seen == [str(s["id"]) for s in _hooks.SERVICES]
    assert list(audit.rows("cards")) == []
    assert fetched == []
    status, _ = handle_hook("dryneedle-screening", _app._warm_up_request("patient-view"),
                            today=lambda: TODAY)
    assert status == 200
    audit.close()
