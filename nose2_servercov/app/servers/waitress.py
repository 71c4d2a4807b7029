"""waitress, the pure-Python WSGI server (``waitress-serve``, ``waitress.serve``)."""

from __future__ import annotations

import sys

from nose2_servercov.app.servers.base import Environ, software
from nose2_servercov.app.servers.main_thread import MainThreadServer


class WaitressServer(MainThreadServer):
    """waitress: its main thread runs the socket loop, its threads the requests.

    A SystemExit in the main thread ends the loop, and waitress shuts its task
    threads down, letting each finish its request.
    """

    name = "waitress"

    @classmethod
    def recognises(cls, environ: Environ) -> bool:
        # SERVER_SOFTWARE is waitress's --ident, "waitress" unless the user set another.
        return software(environ) == "waitress" or "waitress.server" in sys.modules
