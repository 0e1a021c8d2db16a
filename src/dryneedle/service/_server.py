"""Serving the application with uvicorn, with connection-level limits (``dryneedle serve``).

What it is for: :func:`server_config` returns the uvicorn configuration the service runs with:
a header timeout (a connection whose request line and headers are not complete within
``header_timeout`` seconds is closed: half-sent requests -- "slowloris" -- cannot pile up),
a cap on the header size (``h11_max_incomplete_event_size``), an idle keep-alive timeout, and a
cap on concurrent connections (``limit_concurrency``, 503 beyond). Body size and body read
time are bounded by :class:`~._limits.BodyLimitMiddleware`, inside the application.

May import: the standard library and uvicorn (the ``service`` extra).
"""

from __future__ import annotations

from typing import Any

__all__ = ["server_config"]


def _protocol(header_timeout: float) -> type:
    from uvicorn.protocols.http.h11_impl import H11Protocol  # noqa: PLC0415 - optional extra

    class HeaderTimeoutProtocol(H11Protocol):
        """uvicorn's h11 protocol, closing connections whose headers do not arrive in time."""

        _deadline: Any = None

        def _arm(self) -> None:
            cycle = self.cycle
            if self._deadline is not None:
                self._deadline.cancel()

            def expire() -> None:
                if self.cycle is cycle and not self.transport.is_closing():
                    self.transport.close()  # no new request started in time

            self._deadline = self.loop.call_later(header_timeout, expire)

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            super().connection_lost(exc)

    return HeaderTimeoutProtocol


def server_config(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    header_timeout: float = 10.0,
    keep_alive: int = 5,
    max_header_bytes: int = 16 * 1024,
    max_connections: int = 2048,
    log_level: str = "warning",
    **kwargs: Any,
) -> Any:
    """Return a ``uvicorn.Config`` serving ``app`` with the connection limits above.

    Args:
        app: The ASGI application (:func:`~dryneedle.service.create_app`).
        host: Interface to bind.
        port: Port.
        header_timeout: Seconds a connection may take to send a request line and headers.
        keep_alive: Seconds an idle keep-alive connection stays open.
        max_header_bytes: Largest request line + headers.
        max_connections: Concurrent connections and tasks (503 beyond).
        log_level: uvicorn's log level.
        **kwargs: Passed to ``uvicorn.Config``.
    """
    import uvicorn  # noqa: PLC0415 - optional extra

    return uvicorn.Config(
        app, host=host, port=port, http=_protocol(header_timeout), ws="none", lifespan="off",
        loop="asyncio", timeout_keep_alive=keep_alive,
        h11_max_incomplete_event_size=max_header_bytes, limit_concurrency=max_connections,
        log_level=log_level, **kwargs,
    )
