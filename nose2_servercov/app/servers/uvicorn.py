"""uvicorn, alone, with ``--workers`` or ``--reload`` (its gunicorn worker is gunicorn's)."""

from __future__ import annotations

import sys

from nose2_servercov.app.servers.base import Environ, Server, terminate_supervisor_or_self


class UvicornServer(Server):
    """uvicorn: it handles TERM itself (lifespan shutdown included).

    With ``--workers`` or ``--reload`` this process is a worker of a
    multiprocessing supervisor, which TERM stops with its workers.
    """

    name = "uvicorn"

    @classmethod
    def recognises(cls, environ: Environ) -> bool:
        return "uvicorn" in sys.modules

    def stop(self) -> None:
        terminate_supervisor_or_self()
