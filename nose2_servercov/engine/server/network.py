"""Network probes: pick a free port, probe a port or a URL, tell who owns a listener.

Picking a port by binding port 0 and closing leaves a short window in which
another program can take it.  Rather than trust the pick, readiness asks the
kernel which processes hold the listening socket, so a port answered by
somebody else is never mistaken for our server.
"""

from __future__ import annotations

import http.client
import socket
import struct
import urllib.parse
from collections.abc import Iterable

from nose2_servercov import procfs


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
    """Return the inodes of sockets listening on ``port``, None where the kernel cannot tell.

    The kernel's sock_diag netlink interface is asked first, with a filter on
    the LISTEN state: it answers with the few listeners only, where
    /proc/net/tcp lists every socket (tens of thousands in TIME_WAIT after a
    load test, which cost a readiness check 0.2 s).
    """
    try:
        return {inode for inode, found in _listeners_netlink().items() if found == port}
    except (OSError, AttributeError):  # AttributeError: no AF_NETLINK (not Linux)
        return procfs.listening_inodes(port)


_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST_DUMP = 0x1 | 0x300
_NLMSG_DONE, _NLMSG_ERROR = 3, 2
_TCP_LISTEN = 10
_DIAG_MSG = struct.Struct("=BBBB HH16s16sI8s IIIII")  # inet_diag_msg; ports big-endian


def _listeners_netlink() -> dict[str, int]:
    """Return every listening TCP socket of this machine: its inode -> its port."""
    listeners: dict[str, int] = {}
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM,
                       4) as sock:  # 4: NETLINK_SOCK_DIAG
        sock.settimeout(2.0)
        for family in (socket.AF_INET, socket.AF_INET6):
            request = struct.pack("=BBBBI48x", family, socket.IPPROTO_TCP, 0, 0,
                                  1 << _TCP_LISTEN)
            header = struct.pack("=IHHII", 16 + len(request), _SOCK_DIAG_BY_FAMILY,
                                 _NLM_F_REQUEST_DUMP, family, 0)
            sock.send(header + request)
            listeners.update(_read_diag_dump(sock))
    return listeners


def _read_diag_dump(sock: socket.socket) -> dict[str, int]:
    listeners: dict[str, int] = {}
    while True:
        chunk = sock.recv(65536)
        offset = 0
        while offset + 16 <= len(chunk):
            length, kind = struct.unpack_from("=IH", chunk, offset)
            if kind == _NLMSG_DONE:
                return listeners
            if kind == _NLMSG_ERROR or length < 16:
                raise OSError("sock_diag refused the request")
            fields = _DIAG_MSG.unpack_from(chunk, offset + 16)
            listeners[str(fields[-1])] = socket.ntohs(fields[4])
            offset += (length + 3) & ~3


def listening_ports(pids: Iterable[int]) -> set[int] | None:
    """Return the TCP ports ``pids`` listen on; None where the kernel cannot tell."""
    try:
        listeners = _listeners_netlink()
    except (OSError, AttributeError):
        return None
    inodes: set[str] = set()
    for pid in pids:
        inodes |= procfs.socket_inodes(pid)
    return {port for inode, port in listeners.items() if inode in inodes}


def listener_owned_by(port: int, pids: Iterable[int]) -> bool | None:
    """Return whether one of ``pids`` holds a socket listening on ``port``.

    None means this system cannot tell (no /proc), and the caller must trust
    the connection alone.
    """
    listening = _listening_inodes(port)
    if listening is None:
        return None
    return any(listening & procfs.socket_inodes(pid) for pid in pids)


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
