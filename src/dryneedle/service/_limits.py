"""Request limits for the service: body size and body read time, as an ASGI middleware.

What it is for: :class:`BodyLimitMiddleware` reads each request body before the application
sees it, and answers **413** when ``Content-Length`` announces more than ``max_body`` bytes
(before reading any of it) or when the streamed (e.g. chunked) body grows past it (it stops
reading there: memory stays bounded), and **408** when the whole body has not arrived within
``body_timeout`` seconds (slow clients cannot hold a worker). The errors are FHIR
``OperationOutcome`` bodies. Header size and idle connections are bounded by the server
(uvicorn ``h11_max_incomplete_event_size``, ``timeout_keep_alive``; see ``dryneedle serve``).

May import: the standard library and anyio (a dependency of the ``service`` extra).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

__all__ = ["BodyLimitMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_CODES: Final = {408: "timeout", 413: "too-costly", 400: "invalid"}


async def _error(send: Send, status: int, message: str) -> None:
    body = json.dumps({"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": _CODES[status], "diagnostics": message}]}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read the body within the limits, then call the application with it."""
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        import anyio  # noqa: PLC0415 - the service extra brings it

        for name, value in scope.get("headers", []):
            if name == b"content-length":
                if not value.isdigit():
                    await _error(send, 400, "invalid Content-Length")
                    return
                if int(value) > self.max_body:
                    await _error(send, 413, f"request body larger than {self.max_body} bytes")
                    return
        chunks: list[bytes] = []
        size = 0
        too_large = False
        with anyio.move_on_after(self.body_timeout) as scoped:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_body:
                    too_large = True
                    break
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        if too_large:
            await _error(send, 413, f"request body larger than {self.max_body} bytes")
            return
        if scoped.cancelled_caught:
            await _error(send, 408, f"request body not received within {self.body_timeout} s")
            return
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect

        await self.app(scope, replay, send)
