"""uvicorn, alone, with ``--workers`` or ``--reload`` (its gunicorn worker is gunicorn's)."""

from __future__ import annotations

from nose2_servercov.app.servers.base import SupervisedServer


class UvicornServer(SupervisedServer):
    """uvicorn: it handles TERM itself (lifespan shutdown included).

    With ``--workers`` or ``--reload`` this process is a worker of a
    multiprocessing supervisor, which TERM stops with its workers.
    """

    name = "uvicorn"
    module = "uvicorn"
