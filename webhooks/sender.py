"""Sending one webhook request, safely.

The host is resolved here, at send time, and every address it resolves to must be public
(not private, loopback, link-local, multicast, reserved or unspecified) unless
``WEBHOOKS_ALLOW_PRIVATE`` is on; the connection then goes to the address that was checked (no
second lookup an attacker's DNS could answer differently). Redirects are not followed (a 3xx is
an answer like any other non-2xx), the whole exchange has a deadline, and only the first bytes of
the answer are read.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

READ_LIMIT = 64 * 1024  # bytes of an answer read at most
HEAD_CHARS = 500  # characters of it kept in the log


class SendError(Exception):
    """No answer (refused target, DNS, connection, TLS, timeout); the message says why."""


@dataclass(frozen=True)
class Answer:
    status: int
    head: str
    duration_ms: int


def allow_private() -> bool:
    return bool(getattr(settings, "WEBHOOKS_ALLOW_PRIVATE", False))


def timeout_seconds() -> float:
    return float(getattr(settings, "WEBHOOKS_TIMEOUT_SECONDS", 10.0))


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
        or ip.is_unspecified
    )


def literal_private(host: str) -> bool:
    """The host is an address (or a name for this machine) that is not public."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return not is_public(name)
    except ValueError:
        return False


def resolve(host: str, port: int) -> str:
    """One address of ``host`` to connect to; ``SendError`` when it has none or, unless private
    targets are allowed, when any of them is not public."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise SendError(f"DNS: {host} cannot be resolved ({exc})") from exc
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise SendError(f"DNS: {host} has no address")
    if not allow_private():
        refused = [a for a in addresses if not is_public(a)]
        if refused:
            raise SendError(f"refused: {host} resolves to a private or loopback address ({refused[0]})")
    return addresses[0]


class Pool:
    """Connections kept open between the requests of one delivery run (keep-alive): no new TCP
    and TLS handshake per event. Each was opened to an address checked by ``resolve``."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, str, int], http.client.HTTPConnection] = {}

    def take(self, key: tuple[str, str, int]) -> http.client.HTTPConnection | None:
        return self._open.pop(key, None)

    def give(self, key: tuple[str, str, int], conn: http.client.HTTPConnection) -> None:
        self._open[key] = conn

    def close(self) -> None:
        for conn in self._open.values():
            conn.close()
        self._open.clear()


# What a kept-alive connection the receiver closed in the meantime looks like: try a fresh one.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, http.client.BadStatusLine)


def _connect(host: str, port: int, https: bool, timeout: float) -> http.client.HTTPConnection:
    address = resolve(host, port)
    sock = socket.create_connection((address, port), timeout=timeout)
    conn: http.client.HTTPConnection
    if https:
        context = ssl.create_default_context()
        sock = context.wrap_socket(sock, server_hostname=host)
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    conn.sock = sock  # connected to the address checked above, not looked up again
    return conn


def post(url: str, body: bytes, headers: dict[str, str], *, pool: Pool | None = None) -> Answer:
    parts = urlsplit(url)
    host = parts.hostname or ""
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    key = (parts.scheme, host, port)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    started = time.monotonic()
    deadline = started + timeout_seconds()

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SendError(f"timeout after {timeout_seconds():g} s")
        return left

    def exchange(conn: http.client.HTTPConnection) -> tuple[http.client.HTTPResponse, bytes]:
        assert conn.sock is not None  # noqa: S101 - connected by _connect or kept by the pool
        conn.sock.settimeout(remaining())
        conn.request("POST", path, body=body, headers={**headers, "Content-Length": str(len(body))})
        response = conn.getresponse()
        chunks: list[bytes] = []
        size = 0
        while size < READ_LIMIT:
            if conn.sock is not None:  # http.client lets go of the socket on a closing answer
                conn.sock.settimeout(remaining())
            else:
                remaining()
            chunk = response.read(min(8192, READ_LIMIT - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return response, b"".join(chunks)

    kept = pool.take(key) if pool is not None else None
    try:
        if kept is not None:
            try:
                response, answer = exchange(kept)
                conn = kept
            except _STALE:
                kept.close()
                conn = _connect(host, port, https, remaining())
                response, answer = exchange(conn)
        else:
            conn = _connect(host, port, https, remaining())
            response, answer = exchange(conn)
    except SendError:
        raise
    except TimeoutError as exc:
        raise SendError(f"timeout after {timeout_seconds():g} s") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise SendError(f"{type(exc).__name__}: {exc}"[:300]) from exc
    if pool is not None and response.isclosed() and not response.will_close and conn.sock is not None:
        pool.give(key, conn)  # read to its end and not closing: the next request can use it
    else:
        conn.close()
    head = answer[: HEAD_CHARS * 4].decode("utf-8", "replace")[:HEAD_CHARS]
    return Answer(status=response.status, head=head, duration_ms=int((time.monotonic() - started) * 1000))
