"""Request limits for the service: body size and body read time, as an ASGI middleware.

What it is for: :class:`BodyLimitMiddleware` reads each request body before the application
sees it, and answers **413** when ``Content-Length`` announces more than ``max_body`` bytes
(before reading any of it) or when the streamed (e.g. chunked) body grows past it (it stops
reading there: memory stays bounded), and **408** when the whole body has not arrived within
``body_timeout`` seconds (slow clients cannot hold a worker). The errors are FHIR
``OperationOutcome`` bodies. :class:`BodyLimits` applies the same limits for a caller that reads
the body itself (the service's hook calls; :func:`refusal` makes the error answer). Under
asyncio the deadline is an :func:`asyncio.timeout` (about 5 µs of CPU per request on uvloop
against 9 for an anyio cancel scope), under another anyio backend an anyio one. Header size and
idle connections are bounded by the server (uvicorn ``h11_max_incomplete_event_size``,
``timeout_keep_alive``; see ``dryneedle serve``).

May import: the standard library and anyio (a dependency of the ``service`` extra).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

__all__ = ["BodyLimitMiddleware", "BodyLimits", "refusal"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_CODES: Final = {408: "timeout", 413: "too-costly", 400: "invalid"}


def _in_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # pragma: no cover - another anyio backend (trio)
        return False
    return True


def refusal(status: int, message: str) -> tuple[Message, Message]:
    """The two ASGI messages refusing a body: ``status`` (400, 408, 413), an OperationOutcome."""
    body = json.dumps({"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": _CODES[status], "diagnostics": message}]}).encode()
    return ({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close")]}, {"type": "http.response.body", "body": body})


class BodyLimits:
    """The body limits of :class:`BodyLimitMiddleware`, for a caller that reads the body itself.

    Args:
        max_body: Largest body accepted, in bytes.
        body_timeout: Seconds allowed to receive the whole body.
    """

    __slots__ = ("body_timeout", "max_body")

    def __init__(self, *, max_body: int = 1024 * 1024, body_timeout: float = 10.0) -> None:
        self.max_body = max_body
        self.body_timeout = body_timeout

    async def read_body(self, scope: Scope, receive: Receive) -> bytes | tuple[int, str] | None:
        """Read the request body within the limits; answer nothing.

        Returns:
            The body; or ``(status, message)`` when it is refused (400, 408 or 413, as
            :class:`BodyLimitMiddleware` says: :func:`refusal` makes the answer); or ``None``
            when the client disconnected. Under asyncio the read time is bounded with
            :func:`asyncio.timeout` (cheaper than an anyio cancel scope), else with anyio's.
        """
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                if not value.isdigit():
                    return 400, "invalid Content-Length"
                if int(value) > self.max_body:
                    return 413, f"request body larger than {self.max_body} bytes"
        chunks: list[bytes] = []
        read = _Read()
        if _in_asyncio():
            try:
                async with asyncio.timeout(self.body_timeout):
                    await self._read(receive, chunks, read)
            except TimeoutError:
                read.timed_out = True
        else:  # pragma: no cover - another anyio backend (trio)
            import anyio  # noqa: PLC0415 - the service extra brings it

            with anyio.move_on_after(self.body_timeout) as scoped:
                await self._read(receive, chunks, read)
            read.timed_out = scoped.cancelled_caught
        if read.disconnected:
            return None
        if read.too_large:
            return 413, f"request body larger than {self.max_body} bytes"
        if read.timed_out:
            return 408, f"request body not received within {self.body_timeout} s"
        return b"".join(chunks)

    async def _read(self, receive: Receive, chunks: list[bytes], read: _Read) -> None:
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                read.disconnected = True
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                read.too_large = True
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                return


class BodyLimitMiddleware:
    """Bounds the size and the read time of request bodies (see the module docstring).

    Args:
        app: The ASGI application.
        max_body: Largest body accepted, in bytes.
        body_timeout: Seconds allowed to receive the whole body.
    """

    def __init__(self, app: ASGIApp, *, max_body: int = 1024 * 1024,
                 body_timeout: float = 10.0) -> None:
        self.app = app
        self.max_body = max_body
        self.body_timeout = body_timeout
        self._limits = BodyLimits(max_body=max_body, body_timeout=body_timeout)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read the body within the limits, then call the application with it."""
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        body = await self._limits.read_body(scope, receive)
        if type(body) is tuple:
            for message in refusal(*body):
                await send(message)
            return
        if body is None:
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect

        await self.app(scope, replay, send)


class _Read:
    """How a body read ended (other than complete)."""

    __slots__ = ("disconnected", "timed_out", "too_large")

    def __init__(self) -> None:
        self.disconnected = False
        self.too_large = False
        self.timed_out = False
