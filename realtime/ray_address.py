"""A Ray cluster's address checked before `ray.init`: at a host and port where nothing listens,
`ray.init` retries for many minutes, printing Ray's own lines ("Failed to get cluster ID from GCS
server: TimedOut") every half minute."""
from __future__ import annotations

import socket
from urllib.parse import urlsplit

CONNECT_TIMEOUT_S = 5.0


def check_ray_address(address: str | None) -> None:
    """ConnectionError (one line) when `address` names a host and port ("HOST:PORT", or Ray
    client's "ray://HOST:PORT") where nothing accepts a TCP connection within CONNECT_TIMEOUT_S
    seconds. None, "local", "auto" and addresses without a port pass: Ray resolves them."""
    if not address or address in ("local", "auto"):
        return
    parts = urlsplit(address if "://" in address else f"//{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:  # not a port number: Ray's own error says so
        return
    if host is None or port is None:
        return
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except socket.gaierror as exc:
        raise ConnectionError(f"cannot find the host {host} ({exc.strerror or exc})") from None
    except OSError as exc:
        raise ConnectionError(f"nothing answers there ({exc.strerror or exc})") from None
