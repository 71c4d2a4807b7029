"""hypercorn, alone or with ``--workers``."""

from __future__ import annotations

import sys

from nose2_servercov.app.servers.base import Environ, Server, terminate_supervisor_or_self


class HypercornServer(Server):
    """hypercorn: it handles TERM itself (lifespan shutdown included).

    With ``--workers`` this process is a worker of a multiprocessing
    supervisor, which on TERM stops its workers its own way (an event).
    """

    name = "hypercorn"

    @classmethod
    def recognises(cls, environ: Environ) -> bool:
        return "hypercorn" in sys.modules

    def stop(self) -> None:
        terminate_supervisor_or_self()
