"""hypercorn, alone or with ``--workers``."""

from __future__ import annotations

from nose2_servercov.app.servers.base import SupervisedServer


class HypercornServer(SupervisedServer):
    """hypercorn: it handles TERM itself (lifespan shutdown included).

    With ``--workers`` this process is a worker of a multiprocessing
    supervisor, which on TERM stops its workers its own way (an event).
    """

    name = "hypercorn"
    module = "hypercorn"
