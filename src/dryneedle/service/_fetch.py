"""Fetching prefetch data from the CDS client's FHIR server (``fhirServer`` + bearer token).

What it is for: :class:`FhirFetcher` runs one prefetch query (``Condition?patient=p1``)
against ``fhirServer`` with the request's ``fhirAuthorization.access_token`` as a Bearer
token (``cds-hooks-2.0`` "FHIR Resource Access"), using httpx with bounded connect / read
timeouts, a cap on the bytes read (streamed, never buffered beyond it) and a cap on the
``next`` pages followed. ``next`` links must stay on the same server (scheme, host, port and
base path): the service never follows a link elsewhere. The pages are merged into one
``searchset`` Bundle, or ``None`` when the search matched nothing.

The network waits run in :func:`~._workers.waiting_for_io`: a worker thread waiting for the FHIR
server gives its compute slot to the next request.

May import: the standard library, httpx (the ``service`` extra) and :mod:`._workers`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

from dryneedle.service._workers import waiting_for_io

__all__ = ["FetchError", "FhirFetcher"]

_ACCEPT: Final = "application/fhir+json, application/json;q=0.9"


class FetchError(Exception):
    """The FHIR server could not give the data (status, size, timeout, not FHIR JSON)."""


def _same_server(base: str, url: str) -> bool:
    b, u = urlsplit(base), urlsplit(url)
    return (b.scheme, b.netloc) == (u.scheme, u.netloc) and u.path.startswith(
        b.path.rstrip("/") + "/")


class FhirFetcher:
    """Reads FHIR searches from a CDS client's server, bounded in time, size and pages.

    Args:
        allowed_servers: ``fhirServer`` base URLs (prefixes) the service may call; empty means
            any ``https`` server (``http`` only for loopback hosts, for tests and sandboxes).
        timeout: Seconds for connecting and for each read.
        max_bytes: Bytes read per page at most (a larger answer is an error).
        max_pages: ``next`` pages followed at most (more is an error: data would be missing).
        transport: An httpx transport (tests).
    """

    def __init__(
        self,
        *,
        allowed_servers: Sequence[str] = (),
        timeout: float = 5.0,
        max_bytes: int = 8 * 1024 * 1024,
        max_pages: int = 10,
        transport: Any = None,
    ) -> None:
        import httpx  # noqa: PLC0415 - optional extra

        self.allowed_servers = tuple(allowed_servers)
        self.max_bytes = max_bytes
        self.max_pages = max_pages
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout), follow_redirects=False, transport=transport,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=8),
        )
        self._httpx = httpx

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def allows(self, server: str) -> bool:
        """Return whether the service may call this ``fhirServer``."""
        parts = urlsplit(server)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False
        if self.allowed_servers:
            return any(server.rstrip("/") == a.rstrip("/")
                       or server.startswith(a.rstrip("/") + "/") for a in self.allowed_servers)
        loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
        return parts.scheme == "https" or loopback

    def _get(self, url: str, token: str) -> Mapping[str, Any]:
        headers = {"Accept": _ACCEPT, "Authorization": f"Bearer {token}"}
        try:
            with self._client.stream("GET", url, headers=headers) as response:
                if response.status_code != 200:
                    msg = f"FHIR server answered HTTP {response.status_code}"
                    raise FetchError(msg)
                declared = response.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
                    msg = "FHIR server answer too large"
                    raise FetchError(msg)
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        msg = "FHIR server answer too large"
                        raise FetchError(msg)
                    chunks.append(chunk)
        except self._httpx.HTTPError as exc:
            msg = f"FHIR server unreachable ({type(exc).__name__})"
            raise FetchError(msg) from None
        try:
            data = json.loads(b"".join(chunks))
        except (ValueError, RecursionError):
            msg = "FHIR server answer is not JSON"
            raise FetchError(msg) from None
        if not isinstance(data, Mapping) or not isinstance(data.get("resourceType"), str):
            msg = "FHIR server answer is not a FHIR resource"
            raise FetchError(msg)
        if data["resourceType"] == "OperationOutcome":
            msg = "FHIR server answered an OperationOutcome"
            raise FetchError(msg)
        return data

    def fetch(self, server: str, query: str, token: str) -> Mapping[str, Any] | None:
        """Run one query; return the resource, the merged searchset, or ``None`` (no match).

        Raises:
            FetchError: When the server is not allowed or cannot give the whole answer.
        """
        if not self.allows(server):
            msg = "fhirServer is not an allowed FHIR server"
            raise FetchError(msg)
        base = server.rstrip("/")
        url: str | None = f"{base}/{query}"
        entries: list[Any] = []
        first: Mapping[str, Any] | None = None
        pages = 0
        while url is not None:
            pages += 1
            if pages > self.max_pages:
                msg = f"more than {self.max_pages} pages of results"
                raise FetchError(msg)
            with waiting_for_io():
                page = self._get(url, token)
            if page.get("resourceType") != "Bundle":
                return page  # a read (Patient/p1)
            first = first or page
            entries.extend(e for e in page.get("entry") or [] if isinstance(e, Mapping))
            url = next((link.get("url") for link in page.get("link") or []
                        if isinstance(link, Mapping) and link.get("relation") == "next"), None)
            if url is not None and (not isinstance(url, str) or not _same_server(base, url)):
                msg = "a next link leaves the FHIR server"
                raise FetchError(msg)
        if not entries:
            return None
        return {"resourceType": "Bundle", "type": "searchset", "total": len(entries),
                "entry": entries}
