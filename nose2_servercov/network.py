"""Network probes: pick a free port, probe a port or a URL, tell who owns a listener.

Picking a port by binding port 0 and closing leaves a short window in which
another program can take it.  Rather than trust the pick, readiness asks the
kernel which processes hold the listening socket, so a port answered by
somebody else is never mistaken for our server.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

_LISTEN = "0A"


def resolve(host: str) -> None:
    """Raise OSError (socket.gaierror) when ``host`` has no address."""
    socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)


def pick_free_port(host: str) -> int:
    """Return a port on ``host`` that nothing listens on right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    """Return whether a TCP connection to ``host:port`` is accepted."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _listening_inodes(port: int) -> set[str] | None:
    """Return the inodes of sockets listening on ``port``, None where /proc cannot tell."""
    inodes: set[str] = set()
    seen_any = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        seen_any = True
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == _LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes if seen_any else None


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    with contextlib.suppress(OSError):
        for fd in os.listdir(fd_dir):
            with contextlib.suppress(OSError):
                target = os.readlink(f"{fd_dir}/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    return inodes


def listener_owned_by(port: int, pids: Iterable[int]) -> bool | None:
    """Return whether one of ``pids`` holds a socket listening on ``port``.

    None means this system cannot tell (no /proc), and the caller must trust
    the connection alone.
    """
    listening = _listening_inodes(port)
    if listening is None:
        return None
    return any(listening & _socket_inodes(pid) for pid in pids)


def http_status(method: str, url: str, *, headers: dict[str, str] | None = None,
                timeout: float = 2.0) -> int:
    """Send one request without proxies or retries; return the status, raise OSError."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:  # the config refuses such URLs; never a traceback here
        raise OSError(f"not a URL with a valid port: {url!r} ({exc})") from None
    connection_class = (http.client.HTTPSConnection if parts.scheme == "https"
                        else http.client.HTTPConnection)
    conn = connection_class(parts.hostname or "127.0.0.1", port, timeout=timeout)
    try:
        path = parts.path or "/"
        conn.request(method, f"{path}?{parts.query}" if parts.query else path,
                     headers=headers or {})
        response = conn.getresponse()
        # Read the body too: a server whose client hangs up early may skip its
        # close() callbacks (Werkzeug does), and a stop may hang on one.
        response.read()
        return response.status
    except OSError:
        raise
    except (http.client.HTTPException, ValueError) as exc:  # ValueError: a bad path or header
        raise OSError(f"{type(exc).__name__}: {exc}") from None
    finally:
        conn.close()
