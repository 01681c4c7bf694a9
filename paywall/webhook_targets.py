"""Where a partner's webhook may be sent: in production, only to public internet addresses.

A webhook URL is chosen by a partner, and the worker that POSTs to it runs inside our
cluster, so it could be aimed at what only the cluster can reach: the cloud metadata
service (169.254.169.254), the Kafka brokers, the database, a sidecar on 127.0.0.1. Such an
address is refused twice:

- when the endpoint is registered, for a clear 422 (`refusal`);
- at every delivery, on the address the worker actually connects to (`guarded_client`):
  a name that resolved to a public address when it was registered and resolves to a
  private one later (DNS rebinding) is refused before a byte is sent.

Locally (the demo, the tests) receivers listen on loopback, so private targets are
allowed outside production unless WEBHOOK_PRIVATE_TARGETS says otherwise.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx


def is_public(address: str) -> bool:
    """A globally routable unicast address (an IPv4-mapped IPv6 one judged as IPv4)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # no IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def addresses(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (an address resolves to itself)."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in found))


def refusal(url: str) -> str | None:
    """Why a webhook may not be sent to `url` in production, or None when it may."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        resolved = addresses(host, port)
    except (socket.gaierror, UnicodeError):
        return f"the host {host!r} does not resolve"
    private = [a for a in resolved if not is_public(a)]
    if private:
        return f"the host {host!r} resolves to {private[0]}, not a public internet address"
    return None


class PublicOnly(httpcore.NetworkBackend):
    """Connects only to public addresses: resolves the name itself, refuses it when any
    address is private, and connects to a checked address (TLS still verifies the name)."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        try:
            resolved = addresses(host, port)
        except (socket.gaierror, UnicodeError) as exc:
            raise httpcore.ConnectError(f"{host} does not resolve: {exc}") from exc
        private = [a for a in resolved if not is_public(a)]
        if private:
            raise httpcore.ConnectError(
                f"refused: {host} resolves to {private[0]}, not a public internet address"
            )
        return self._inner.connect_tcp(resolved[0], port, timeout, local_address, socket_options)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("refused: a webhook never goes to a unix socket")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's own transport over a connection pool that connects through `PublicOnly`."""

    def __init__(self) -> None:
        super().__init__()
        # httpx builds its pool without a way to pass a network backend; this one is the
        # same pool (httpx's defaults) with ours.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=PublicOnly(),
        )


def guarded_client(allow_private: bool, timeout: float) -> httpx.Client:
    """The worker's client: no redirects (a receiver answers where it was registered) and,
    unless private targets are allowed, no proxy from the environment (the proxy would be
    the peer the guard checks) and the guarded transport."""
    if allow_private:
        return httpx.Client(timeout=timeout, follow_redirects=False)
    return httpx.Client(
        timeout=timeout, follow_redirects=False, trust_env=False, transport=GuardedTransport()
    )
