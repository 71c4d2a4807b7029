"""Werkzeug's development server (``flask run``, ``app.run()``, ``run_simple``)."""

from __future__ import annotations

from nose2_servercov.app.servers.base import Environ, software
from nose2_servercov.app.servers.main_thread import MainThreadServer


class WerkzeugServer(MainThreadServer):
    """Werkzeug's dev server: its main thread serves, or with the reloader, watches files.

    A SystemExit in the main thread ends ``serve_forever``, which closes the
    socket.  Under the reloader (``--reload``, ``--debug``) the main thread of
    the serving child watches files while a daemon thread serves: the child
    exits, and the reloader's parent exits with it (it restarts the child only
    on status 3).  The dev server may skip the body's close() when the client
    resets the connection right after the headers: the stop's close grace
    (:data:`nose2_servercov.app.stopping.CLOSE_GRACE_SECONDS`) is for it.
    """

    name = "werkzeug"

    @classmethod
    def recognises(cls, environ: Environ) -> bool:
        return software(environ).startswith("Werkzeug/")
