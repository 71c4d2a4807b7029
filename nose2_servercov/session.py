"""Deprecated: the measured run is :func:`nose2_servercov.engine.run.open_run`.

``ServerSession`` was the one class of a measured run, for a server started
here and for a run against remotes alike.  The run is now chosen once by
:func:`~nose2_servercov.engine.run.open_run` (a
:class:`~nose2_servercov.engine.run.MeasuredRun`: a ``LocalRun`` or a
``RemoteRun``); this module keeps the old name working for one release, and
will be removed in the next one.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nose2_servercov.engine.config import ServerConfig
    from nose2_servercov.engine.data import ReportResult
    from nose2_servercov.engine.server.process import ServerProcess, StopOutcome

__all__ = ["ServerSession"]


class ServerSession:
    """Deprecated: the run :func:`~nose2_servercov.engine.run.open_run` chooses, by its old name.

    It chooses as ``open_run`` does and hands every call to the run chosen.
    New code calls ``open_run``, or ``LocalRun`` where it needs the server
    process itself.
    """

    def __init__(self, config: ServerConfig, *, verbose: bool = False,
                 err: IO[str] | None = None, out: IO[str] | None = None,
                 snapshots: bool = False) -> None:
        # Here, not at the top: importing this module stays as light as it was.
        from nose2_servercov.engine.run import open_run

        self.run = open_run(config, verbose=verbose, err=err, out=out, snapshots=snapshots)

    def __getattr__(self, name: str) -> Any:
        """Hand any other attribute (``settings``, ``url``, ``port``...) to the run chosen."""
        if name == "run":  # not set yet (a failed __init__): no endless recursion
            raise AttributeError(name)
        return getattr(self.run, name)

    @property
    def process(self) -> ServerProcess | None:
        """Return the server process started here; None in a run against remotes."""
        process: ServerProcess | None = getattr(self.run, "process", None)
        return process

    def start(self) -> str:
        """Start the run; return the URL the tests reach the server at."""
        return self.run.start()

    def test_env(self) -> dict[str, str]:
        """Return what every test process must see while the server runs."""
        return self.run.test_env()

    def guard(self, pid: int) -> None:
        """End ``pid`` (the test command of ``servercov run``) with the run if we die."""
        self.run.guard(pid)

    def running(self) -> bool:
        """Return whether the server still runs."""
        return self.run.running()

    def stop(self, *, quiet: bool = False) -> StopOutcome | None:
        """Stop the server; idempotent."""
        return self.run.stop(quiet=quiet)

    def finish(self) -> ReportResult:
        """Stop the server, combine the data, write the reports."""
        return self.run.finish()
