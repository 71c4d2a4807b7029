"""Stop the server once the control route's answer has been sent, the server's own way.

Which server runs the process, and how it stops, is the job of
:mod:`nose2_servercov.app.servers`; this module times the stop: after the
answer is out (so the runner reads it), or during the request where a server
needs that (uWSGI's single-core workers).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

from nose2_servercov.app.servers import Environ, Server, find_server

# Werkzeug's dev server may skip close() when the client resets the connection
# right after the headers, so the stop also happens this long after answering.
CLOSE_GRACE_SECONDS = 1.0


def stop_after(sent: threading.Event, environ: Environ) -> None:
    """Stop the server once ``sent`` is set (the answer is out), or after a grace period.

    The server is recognised now, from the request's ``environ``; under a uWSGI
    master it may be stopped at once (:meth:`Server.stop_in_request`).
    """
    server = find_server(environ)
    if server.stop_in_request():
        return
    threading.Thread(target=_stop_when_sent, args=(sent, server),
                     name="servercov-stop", daemon=True).start()


def _stop_when_sent(sent: threading.Event, server: Server) -> None:
    sent.wait(CLOSE_GRACE_SECONDS)
    try:
        server.stop()
    except Exception as exc:  # servercov's stop signal then stops it from outside
        sys.stderr.write(f"servercov: the shutdown route could not stop the server: "
                         f"{exc!r}\n")


def answer_sent() -> threading.Event:
    """Return an event already set: for a server that has the whole answer once it is sent."""
    sent = threading.Event()
    sent.set()
    return sent


class StopAfterResponse:
    """A WSGI response body that stops the server once it has been sent."""

    def __init__(self, body: bytes, environ: Environ) -> None:
        self.body = body
        self.sent = threading.Event()
        # stop_after recognises the server now: uWSGI empties the request's environ
        # once the response is sent, and a stop that cannot tell uWSGI from Werkzeug
        # would TERM a uWSGI worker.
        stop_after(self.sent, environ)

    def __iter__(self) -> Iterator[bytes]:
        yield self.body
        self.sent.set()  # the server asked for more: the body is written

    def close(self) -> None:
        self.sent.set()
