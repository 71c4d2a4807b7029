"""The base classes of the servers the control route knows how to stop.

Like requests' transport adapters: each server is one subclass that says how
to recognise it from inside the process it runs (the request's WSGI environ,
Django's ``request.META``, or nothing for ASGI; then the modules the process
has imported) and how to stop it the server's own orderly way, so that every
worker finishes its requests and runs its exit code (servercov's save).
:class:`SupervisedServer` is the base of those that handle TERM themselves.
"""

from __future__ import annotations

import os
import signal
import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

Environ = Mapping[str, Any]


class Server(ABC):
    """One server: how to recognise it, and how to stop it its own orderly way."""

    name: ClassVar[str]  # what the server is called (its command's name)

    @classmethod
    @abstractmethod
    def recognises(cls, environ: Environ) -> bool:
        """Return whether this process serves under this server.

        ``environ`` is the request's WSGI environ (empty for an ASGI request):
        read it while the request runs, since some servers empty it afterwards.
        """

    def stop_in_request(self) -> bool:
        """Stop the server now, while the request is answered, if that is safer; return whether.

        Most servers are stopped only once the answer has been sent
        (:meth:`stop`); this is for those where that is too late.
        """
        return False

    @abstractmethod
    def stop(self) -> None:
        """Ask the server to stop in its orderly way; called once the answer has been sent."""


def software(environ: Environ) -> str:
    """Return the request's ``SERVER_SOFTWARE`` (``"gunicorn/23.0.0"``), empty if unknown."""
    return str(environ.get("SERVER_SOFTWARE", ""))


def pool_parent() -> int | None:
    """Return the pid of the multiprocessing parent that supervises this process, if any."""
    process = sys.modules.get("multiprocessing.process")
    parent = process.parent_process() if process is not None else None
    return parent.pid if parent is not None and parent.pid == os.getppid() else None


class SupervisedServer(Server):
    """A server that handles TERM itself, alone or as a worker of a multiprocessing supervisor.

    Recognised by its module in the process.  With a supervisor (``--workers``,
    ``--reload``) the TERM goes to it, and it stops its workers its own way.
    """

    module: ClassVar[str]  # the server's package, imported only where it serves

    @classmethod
    def recognises(cls, environ: Environ) -> bool:
        return cls.module in sys.modules

    def stop(self) -> None:
        os.kill(pool_parent() or os.getpid(), signal.SIGTERM)
