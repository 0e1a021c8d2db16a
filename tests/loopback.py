"""Test helpers: an ASGI application under uvicorn on a free 127.0.0.1 port, and CDS client JWTs.

:class:`Server` binds a loopback socket on port 0 (the system picks a free port), serves the
application with the service's connection limits (:func:`dryneedle.service.server_config`) in a
background thread, and stops it on exit; every wait is bounded. :class:`ClientKeys` is a test
EHR's signing key (ES384), its JWK Set, and a signer of fresh tokens (new ``jti`` each time).
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from typing import Any, Self

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec

from dryneedle.service import server_config

TIMEOUT = 10.0
ISS = "https://ehr.example.org/"


def read_all(s: socket.socket) -> bytes:
    """Everything a server sends on ``s`` until it closes (or the socket times out)."""
    chunks = []
    try:
        while chunk := s.recv(65536):
            chunks.append(chunk)
    except (TimeoutError, ConnectionResetError):
        pass
    return b"".join(chunks)


class Server:
    """An ASGI app under uvicorn (with the service's limits) on a free loopback port.

    Args:
        app: The ASGI application, or ``None`` with ``factory``.
        factory: Called with the server's URL to make the application (its JWT ``aud``).
        **limits: Passed to :func:`~dryneedle.service.server_config`.
    """

    def __init__(self, app: Any, *, factory: Any = None, **limits: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        if factory is not None:
            app = factory(self.url)
        self.server = uvicorn.Server(server_config(app, **limits))
        self.thread = threading.Thread(target=self.server.run,
                                       kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + TIMEOUT
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                msg = "the server did not start"
                raise RuntimeError(msg)
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=TIMEOUT)
        self.sock.close()
        assert not self.thread.is_alive(), "the server did not stop"


class ClientKeys:
    """A CDS client's signing key pair (ES384, ``kid`` ``ehr-1``) and its public JWK Set."""

    def __init__(self, kid: str = "ehr-1") -> None:
        self.kid = kid
        self.private = ec.generate_private_key(ec.SECP384R1())
        public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.private.public_key()))
        self.jwks = {"keys": [public | {"kid": kid, "use": "sig", "alg": "ES384"}]}

    def token(self, aud: str, *, headers: dict[str, Any] | None = None, **claims: Any) -> str:
        """A signed JWT for ``aud`` (5 minutes, a fresh ``jti``); ``claims`` override."""
        now = int(time.time())
        body = {"iss": ISS, "aud": aud, "exp": now + 300, "iat": now,
                "jti": str(uuid.uuid4())} | claims
        head = {"kid": self.kid, "typ": "JWT"} | (headers or {})
        return str(jwt.encode(body, self.private, algorithm="ES384", headers=head))
