"""Authenticating CDS clients with signed JWTs ("Trusting CDS Clients", ``cds-hooks-2.0``).

What it is for: :class:`JwtAuth` checks the ``Authorization: Bearer <JWT>`` of a call:

* the header names an asymmetric ``alg`` (RS*, PS*, ES*, EdDSA -- never ``none`` nor HMAC,
  which the specification forbids), a ``kid``, and ``typ`` ``JWT`` when given;
* the key is the ``kid`` of the configured JWK Set (a file) or, when the header has a ``jku``,
  of the JWK Set at that URL -- fetched only when it is on the ``jku`` allow-list, with httpx,
  bounded in time and size, and cached;
* the signature is checked by PyJWT against that key; ``iss`` must be on the allow-list,
  ``aud`` must be this service's URL of the endpoint called, ``exp``, ``iat`` and ``jti`` are
  required, ``iat`` may not be in the future nor ``exp`` far ahead (:attr:`JwtAuth.max_lifetime`);
* each ``(iss, jti)`` is accepted once (a bounded cache kept until the token expires): a
  replayed token is refused. The cache is :class:`MemoryReplayCache` (one process) or any
  object with its ``once`` method -- :class:`~._replay.SqliteReplayCache` shares it between
  the processes of ``dryneedle serve --processes N``.

May import: the standard library, PyJWT and httpx (the ``service`` extra) and :mod:`._workers`
(a JWK Set fetch waits in :func:`~._workers.waiting_for_io`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Protocol

from dryneedle.service._workers import waiting_for_io

__all__ = ["AuthError", "JwtAuth", "MemoryReplayCache", "ReplayCache"]

ALGORITHMS: Final = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                     "ES256", "ES384", "ES512", "EdDSA")
"""Accepted signature algorithms: asymmetric only (``cds-hooks-2.0`` forbids none and HMAC)."""


_KTY: Final = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
"""JWK ``kty`` of each family of :data:`ALGORITHMS` (by the alg's first two letters)."""


class AuthError(Exception):
    """The call is not authenticated (HTTP 401), or the replay cache is full (503)."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


class ReplayCache(Protocol):
    """Where accepted ``(iss, jti)`` pairs are remembered until their token expires."""

    def once(self, iss: str, jti: str, until: float, now: float) -> None:
        """Accept the pair once; raise :class:`AuthError` on a replay (401) or when full (503)."""


class MemoryReplayCache:
    """The replay cache of one process: a bounded dict, purged of expired tokens when full.

    Args:
        size: Live tokens remembered at most (503 beyond).
    """

    def __init__(self, size: int = 100_000) -> None:
        self.size = size
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def once(self, iss: str, jti: str, until: float, now: float) -> None:
        """Accept ``(iss, jti)`` once until ``until``; see :class:`ReplayCache`."""
        key = (iss, jti)
        with self._lock:
            if key in self._seen and self._seen[key] > now:
                raise AuthError("JWT jti already used (replay)")
            if len(self._seen) >= self.size:
                self._seen = {k: t for k, t in self._seen.items() if t > now}
                if len(self._seen) >= self.size:
                    raise AuthError("too many live tokens; retry later", status=503)
            self._seen[key] = until

    def __len__(self) -> int:
        """Tokens held."""
        return len(self._seen)


class JwtAuth:
    """Verifies CDS client JWTs against configured keys and allow-lists.

    Args:
        issuers: Accepted ``iss`` values.
        jwks: A JWK Set (``{"keys": [...]}``) known out of band, or ``None``.
        jku_allowlist: JWK Set URLs the service may fetch when a token's ``jku`` names them.
        leeway: Seconds of clock skew tolerated on ``exp`` / ``iat``.
        max_lifetime: A token may not expire further than this many seconds ahead.
        replay_cache_size: ``jti`` values remembered at most (the default, in-memory cache).
        replay: The replay cache (default: a :class:`MemoryReplayCache` of
            ``replay_cache_size``); several processes must share one
            (:class:`~._replay.SqliteReplayCache`).
        jwks_ttl: Seconds a fetched JWK Set is cached.
        clock: Returns the time (seconds since the epoch; tests).
        fetch_jwks: Fetches a JWK Set URL (default: httpx, 3 s, 256 kB at most).

    Raises:
        ValueError: With no key source (neither ``jwks`` nor ``jku_allowlist``) or no issuer.
    """

    def __init__(
        self,
        *,
        issuers: Sequence[str],
        jwks: Mapping[str, Any] | None = None,
        jku_allowlist: Sequence[str] = (),
        leeway: float = 30.0,
        max_lifetime: float = 3600.0,
        replay_cache_size: int = 100_000,
        replay: ReplayCache | None = None,
        jwks_ttl: float = 300.0,
        clock: Callable[[], float] = time.time,
        fetch_jwks: Callable[[str], Mapping[str, Any]] | None = None,
    ) -> None:
        import jwt  # noqa: PLC0415 - optional extra

        if not issuers:
            msg = "JWT authentication needs at least one accepted issuer"
            raise ValueError(msg)
        if jwks is None and not jku_allowlist:
            msg = "JWT authentication needs a JWK Set or a jku allow-list"
            raise ValueError(msg)
        self._jwt = jwt
        self.issuers = tuple(issuers)
        self.jku_allowlist = frozenset(jku_allowlist)
        self.leeway = leeway
        self.max_lifetime = max_lifetime
        self.replay_cache_size = replay_cache_size
        self.jwks_ttl = jwks_ttl
        self.clock = clock
        self._fetch = fetch_jwks or _fetch_jwks
        self._local = _keys(jwks) if jwks is not None else {}
        self._remote: dict[str, tuple[float, dict[str, Any]]] = {}
        self.replay = replay if replay is not None else MemoryReplayCache(replay_cache_size)
        self._lock = threading.Lock()

    @classmethod
    def from_jwks_file(cls, path: str | Path, **kwargs: Any) -> JwtAuth:
        """Return a verifier with the JWK Set of a JSON file (other arguments as the class)."""
        with open(path, encoding="utf-8") as f:
            return cls(jwks=json.load(f), **kwargs)

    def _key(self, header: Mapping[str, Any]) -> Any:
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError("JWT header has no kid")
        jku = header.get("jku")
        if jku is None:
            keys = self._local
        elif not isinstance(jku, str) or jku not in self.jku_allowlist:
            raise AuthError("JWT jku is not on the allow-list")
        else:
            keys = self._remote_keys(jku)
        if kid not in keys:
            raise AuthError("JWT kid is not a known key")
        jwk = keys[kid]
        alg = header.get("alg")
        # The header's alg must be one the key is for (kid / alg confusion: an RS256 header on
        # an EC key's kid made PyJWT raise TypeError -- a 500 -- before this check).
        if jwk.get("kty") != _KTY.get(str(alg)[:2]) or jwk.get("alg", alg) != alg:
            raise AuthError("JWT alg does not match the key named by kid")
        try:
            return self._jwt.PyJWK(jwk, algorithm=alg).key
        except (self._jwt.PyJWTError, TypeError, ValueError):
            raise AuthError("the configured key is unusable") from None

    def _remote_keys(self, jku: str) -> dict[str, Any]:
        now = self.clock()
        with self._lock:
            cached = self._remote.get(jku)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            with waiting_for_io():
                document = self._fetch(jku)
            keys = _keys(document)
        except (OSError, ValueError, KeyError, TypeError):
            raise AuthError("the JWK Set at jku could not be read") from None
        with self._lock:
            self._remote[jku] = (now + self.jwks_ttl, keys)
        return keys

    def verify(self, authorization: str | None, audience: Sequence[str]) -> Mapping[str, Any]:
        """Check an ``Authorization`` header value; return the JWT claims.

        Args:
            authorization: The header value (``Bearer <JWT>``), or ``None``.
            audience: The URLs this call may be addressed to (``aud`` must name one).

        Raises:
            AuthError: When the call is not authenticated.
        """
        jwt = self._jwt
        if not authorization or not authorization.startswith("Bearer "):
            raise AuthError("a Bearer JWT is required (CDS Hooks: Trusting CDS Clients)")
        token = authorization[len("Bearer "):].strip()
        if len(token) > 16_384:
            raise AuthError("JWT too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("malformed JWT") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise AuthError("JWT alg not accepted (asymmetric signatures only)")
        if "typ" in header and str(header["typ"]).upper() != "JWT":
            raise AuthError("JWT typ must be JWT")
        key = self._key(header)
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=[alg], audience=list(audience), issuer=list(self.issuers),
                leeway=self.leeway,
                options={"require": ["iss", "aud", "exp", "iat", "jti"], "verify_iat": True},
            )
        except (jwt.PyJWTError, TypeError, ValueError) as exc:  # never a 500
            raise AuthError(f"JWT rejected: {type(exc).__name__}") from None
        now = self.clock()
        exp, iat, jti = claims["exp"], claims["iat"], claims["jti"]
        if not isinstance(iat, (int, float)) or iat > now + self.leeway:
            raise AuthError("JWT iat is in the future")
        if exp > now + self.max_lifetime:
            raise AuthError("JWT expires too far ahead")
        if not isinstance(jti, str) or not jti or len(jti) > 256:
            raise AuthError("JWT jti must be a non-empty string")
        self.replay.once(str(claims["iss"]), jti, float(exp) + self.leeway, now)
        return claims


def _keys(jwks: Mapping[str, Any]) -> dict[str, Any]:
    keys = jwks["keys"]
    if not isinstance(keys, list):
        msg = "a JWK Set has a 'keys' array"
        raise ValueError(msg)
    return {k["kid"]: k for k in keys if isinstance(k, Mapping) and isinstance(k.get("kid"), str)
            and k.get("use", "sig") == "sig" and "d" not in k}  # public signing keys only


def _fetch_jwks(url: str) -> Mapping[str, Any]:
    import httpx  # noqa: PLC0415 - optional extra

    try:
        with httpx.stream("GET", url, timeout=3.0, follow_redirects=False) as response:
            if response.status_code != 200:
                msg = f"HTTP {response.status_code}"
                raise ValueError(msg)
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > 256 * 1024:
                    msg = "JWK Set too large"
                    raise ValueError(msg)
    except httpx.HTTPError as exc:
        raise OSError(str(exc)) from None
    data = json.loads(body)
    if not isinstance(data, Mapping):
        msg = "a JWK Set is a JSON object"
        raise ValueError(msg)
    return data
