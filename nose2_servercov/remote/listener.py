"""The agent's HTTP listener: the standard library's server, hardened for a network.

Why not a small HTTP library (h11, a tiny ASGI server)?  The agent answers
three routes, one request per connection, with bodies it builds itself; the
dangers of a listener on a network are not in parsing HTTP (``http.server``
parses well, with line and header-count limits of its own) but in what the
server around the parser lets clients hold: connections, descriptors, time
and memory.  A library would bring its own server loop with the same
questions and a runtime dependency to a test tool, whose users install it
into every test environment.  So the standard library's threading server is
kept and these bounds are added:

- at most :data:`MAX_CONNECTIONS` connections at a time, and only while
  :func:`fd_headroom` leaves descriptors in reserve for ``/stop``, a stop
  signal, the final combine and the report; beyond that a new connection is
  answered 503 and closed at once, never queued (the listen backlog is
  bounded too);
- a deadline for each request, from the accept to its last byte
  (:data:`REQUEST_DEADLINE`): a client sending a byte every few seconds is cut
  off, whatever the per-read timeout;
- at most :data:`REQUEST_BYTES` read from a connection (request line,
  headers and body together);
- a descriptor held in reserve for the accept loop: at the descriptor limit,
  it is freed to accept and close the waiting connection, so the loop never
  spins at 100 % CPU on a listener that stays readable;
- on close, connections already accepted or waiting in the backlog are
  answered (the handler says 503) before the listener closes; requests still
  being read get :data:`CLOSE_GRACE` seconds, then are cut off, so that the
  serve exits soon after ``/stop`` whatever slow senders do.
"""

from __future__ import annotations

import errno
import http.server
import io
import math
import os
import resource
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

MAX_CONNECTIONS = 64
LISTEN_BACKLOG = 128
REQUEST_DEADLINE = 10.0  # seconds from the accept to the request's last byte
REQUEST_BYTES = 128 * 1024  # request line, headers and body of one request
MAX_BODY = 64 * 1024  # what a control request may carry (it needs none)
CLOSE_GRACE = 2.0  # seconds a request still being read gets once the agent closes
WRITE_TIMEOUT = 60.0  # seconds for sending one answer
POLL = 0.5  # seconds between deadline checks of a blocked read
SAID_FAILURES = 5  # failed connections named one by one; the rest are counted

_REFUSAL = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
            b"Retry-After: 1\r\nContent-Length: 32\r\nConnection: close\r\n\r\n"
            b"too many connections; try again\n")


class RequestTooLarge(OSError):
    """A client sent more than :data:`REQUEST_BYTES` in one request."""


def fd_reserve(soft_limit: int) -> int:
    """Return how many descriptors are kept free: the combine and report need some."""
    return max(16, min(64, soft_limit // 4))


def fd_headroom() -> bool:
    """Return whether one more connection leaves the reserve of descriptors free."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return True
    try:
        used = len(os.listdir("/proc/self/fd"))
    except OSError:  # no procfs: the connection cap alone bounds us
        return True
    return soft - used > fd_reserve(soft)


class DeadlineReader(io.RawIOBase):
    """The raw reader under a request's ``rfile``: a deadline and a byte budget for it all.

    A socket timeout bounds each read only; a client dripping a byte within
    every timeout would hold the connection for good.  Here every read waits
    at most until the request's deadline (checked every :data:`POLL` s, so a
    close of the agent shortens it), and the request may not exceed its budget.
    """

    def __init__(self, sock: socket.socket, deadline: Callable[[], float]) -> None:
        super().__init__()
        self.sock = sock
        self.deadline = deadline
        self.budget = REQUEST_BYTES

    def readable(self) -> bool:
        """Say this reader reads (io's protocol)."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Read what has come, waiting at most until the deadline; raise past it."""
        if self.budget <= 0:
            raise RequestTooLarge(f"a request larger than {REQUEST_BYTES} bytes")
        view = memoryview(buffer).cast("B")[:self.budget]
        while True:
            remaining = self.deadline() - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"a request not whole within {REQUEST_DEADLINE:g} s")
            self.sock.settimeout(min(remaining, POLL))
            try:
                count = self.sock.recv_into(view)
            except TimeoutError:
                continue
            self.budget -= count
            return count


def _refuse_at_once(request: socket.socket) -> None:
    """Answer 503 without waiting for anything (plain HTTP), before the socket is closed."""
    if isinstance(request, ssl.SSLSocket):
        return  # no handshake for a connection we refuse: closing says enough
    try:
        request.setblocking(False)
        request.recv(REQUEST_BYTES)  # what has come, so that the close is no reset
    except OSError:
        pass
    try:
        request.send(_REFUSAL)
    except OSError:
        pass


class HardenedServer(http.server.ThreadingHTTPServer):
    """A threading HTTP server with bounded connections, time, bytes and descriptors."""

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], handler: Any,
                 say: Callable[[str], None]) -> None:
        super().__init__(address, handler)
        self.say = say
        self.lock = threading.Lock()
        self.active = 0
        self.refused = 0
        self.failed = 0
        self.cutoff = math.inf
        self.closing = False
        self.reserve: int | None = os.open(os.devnull, os.O_RDONLY)

    def get_request(self) -> tuple[Any, Any]:
        """Accept; at the descriptor limit, free the reserve to accept and close one."""
        try:
            return super().get_request()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                self._shed_one()
            raise

    def _shed_one(self) -> None:
        if self.reserve is not None:
            os.close(self.reserve)
            self.reserve = None
        try:
            request, _ = self.socket.accept()
            request.close()
        except OSError:
            time.sleep(0.05)  # the system's table is full: never a busy loop
        finally:
            try:
                self.reserve = os.open(os.devnull, os.O_RDONLY)
            except OSError:
                self.reserve = None
        with self.lock:
            self.refused += 1

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Take the connection if under the cap with descriptors in reserve, else refuse it."""
        with self.lock:
            taken = self.active < MAX_CONNECTIONS and fd_headroom()
            if taken:
                self.active += 1
            else:
                self.refused += 1
        if not taken:
            _refuse_at_once(request)
        return taken

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Handle one connection in its thread; free its place in the cap after."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.lock:
                self.active -= 1

    def request_deadline(self, accepted: float) -> float:
        """Return when a request accepted at ``accepted`` must be whole."""
        return min(accepted + REQUEST_DEADLINE, self.cutoff)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Say in one line why a connection failed, for the first few; count the rest."""
        with self.lock:
            self.failed += 1
            failed = self.failed
        if failed <= SAID_FAILURES:
            error = sys.exc_info()[1]
            self.say(f"a connection from {client_address[0]} failed: {error!r}"
                     + (" (further failures are counted)" if failed == SAID_FAILURES else ""))

    def note_cut_off(self) -> None:
        """Count a request the handler refused or cut off (timed out, malformed, too long)."""
        with self.lock:
            self.failed += 1

    def stop_serving(self) -> None:
        """Answer what is accepted or waiting, cut off slow requests, close the listener."""
        self.closing = True
        self.cutoff = time.monotonic() + CLOSE_GRACE
        self.shutdown()
        self.socket.settimeout(0)
        while True:  # the backlog: answered (503 by the handler), not reset
            try:
                request, client_address = self.get_request()
            except OSError:
                break
            if self.verify_request(request, client_address):
                self.process_request(request, client_address)
            else:
                self.shutdown_request(request)
        self.server_close()  # joins the handlers: each ends by the cutoff or its answer
        if self.reserve is not None:
            os.close(self.reserve)
            self.reserve = None
        if self.refused or self.failed > SAID_FAILURES:
            self.say(f"{self.refused} connections refused at once (over {MAX_CONNECTIONS} or "
                     f"descriptors short), {self.failed} failed or cut off")
