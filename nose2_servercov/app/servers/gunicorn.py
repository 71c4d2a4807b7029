"""gunicorn, with any worker class: sync, gthread, gevent, eventlet, uvicorn's."""

from __future__ import annotations

import os
import signal
import sys

from nose2_servercov.app.servers.base import Environ, Server, software


class GunicornServer(Server):
    """gunicorn: the arbiter (this worker's parent) stops every worker gracefully on TERM.

    The signal goes to another process, so the worker's greenlets (gevent,
    eventlet) or event loop (uvicorn's worker) do not matter here.
    """

    name = "gunicorn"

    @classmethod
    def recognises(cls, environ: Environ) -> bool:
        # The module too: an ASGI request (uvicorn's worker) brings no environ.
        return software(environ).startswith("gunicorn") or "gunicorn.arbiter" in sys.modules

    def stop(self) -> None:
        os.kill(os.getppid(), signal.SIGTERM)
