"""Service: one started process group of a run, with its readiness, its stop and its output.

The main server and every ``[servercov:NAME]`` section are each one
:class:`Service`: the same start in a new process group guarded by a keeper,
the same bounded wait for readiness (a ``ready_path`` answering, else a line
of output matching ``ready_output``, else the port accepting a connection of
*this* group, else started), and the same orderly stop (shutdown path, stop
signal, KILL; the group reaped).  What a run does around them (coverage,
accounting, the order of starts and stops) is the run's, not theirs.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from nose2_servercov import procfs, protocol
from nose2_servercov.engine.server import network, route_advice
from nose2_servercov.engine.server.process import ServerProcess, StopOutcome
from nose2_servercov.engine.server.wrongport import WrongPortWatch

NO_PORT = -1


@dataclass(frozen=True)
class Readiness:
    """How to tell that a service is ready, and how long to wait."""

    host: str
    port: int  # NO_PORT: the service listens on none
    url: str  # its base URL ("" without a port)
    ready_path: str | None
    ready_output: re.Pattern[str] | None
    timeout: float


@dataclass(frozen=True)
class Stopping:
    """How to stop a service in order."""

    shutdown_path: str | None
    shutdown_method: str
    stop_signal: signal.Signals
    timeout: float
    token: str  # the X-Servercov-Token of the shutdown call


class Service:
    """One command run as its own process group, from start to reaped."""

    def __init__(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str],
                 log: Path | None, echo: IO[str] | None, readiness: Readiness,
                 stopping: Stopping, rcfile: Path, name: str = "server") -> None:
        self.readiness = readiness
        self.stopping = stopping
        self.rcfile = rcfile
        self.name = name
        self.process = ServerProcess(argv, cwd=cwd, env=env, log=log, echo=echo,
                                     ready_output=readiness.ready_output, name=name)

    @property
    def pid(self) -> int:
        """Return the pid of the command, also its process group's id."""
        return self.process.pid

    def start(self, *, hold: Sequence[int]) -> None:
        """Start the command in its own group; raise ServerStartError if it cannot start."""
        self.process.start(stop_signal=self.stopping.stop_signal, hold=hold)

    def awaited(self) -> str:
        """Return what readiness waits for, in words."""
        ready = self.readiness
        if ready.ready_path:
            return f"{ready.url}{ready.ready_path} to answer with a status < 500"
        if ready.ready_output is not None:
            return f"an output line matching {ready.ready_output.pattern!r} (ready_output)"
        return f"port {ready.port} to accept connections"

    def _answers(self) -> bool:
        """Return whether the port (or the ready_path) answers, not yet whose it is."""
        ready = self.readiness
        if not ready.ready_path:
            return network.port_accepts(ready.host, ready.port, timeout=0.5)
        try:
            status = network.http_status("GET", ready.url + ready.ready_path, timeout=1.0)
        except OSError:
            return False
        return status < 500

    def _is_ready(self, port_watch: WrongPortWatch | None) -> bool:
        if self.readiness.ready_output is not None and not self.readiness.ready_path:
            return self.process.output_matched.is_set()
        assert port_watch is not None
        pid = self.process.pid
        # Whatever answered must be this group, not a program that took the port.
        if self._answers() and network.listener_owned_by(
                self.readiness.port, procfs.group_members(pid)) is not False:
            return True
        port_watch.check(lambda: procfs.group_members(pid))  # one listening elsewhere
        return False

    def wait_until_ready(self, progress: Callable[[float], None] | None = None) -> float:
        """Wait until ready; return the seconds it took.  Raise ServerStartError if never."""
        ready = self.readiness
        if ready.port == NO_PORT and ready.ready_output is None:
            return 0.0  # nothing to wait for: started is ready
        watch = (WrongPortWatch(ready.port, rcfile=self.rcfile, tail=self.process.tail)
                 if ready.port != NO_PORT else None)
        return self.process.wait_until_ready(
            lambda: self._is_ready(watch), timeout=ready.timeout, awaited=self.awaited(),
            progress=progress)

    def _request_shutdown(self) -> str | None:
        """Call the shutdown path; return why it did not work, None when it was delivered."""
        stopping, url = self.stopping, self.readiness.url
        assert stopping.shutdown_path
        try:
            status = network.http_status(
                stopping.shutdown_method, url + stopping.shutdown_path,
                headers={protocol.TOKEN_HEADER: stopping.token}, timeout=stopping.timeout)
        except ConnectionRefusedError:
            return f"the {self.name} refused the connection"
        except TimeoutError:
            return f"no answer within {stopping.timeout:g} s"
        except OSError as exc:
            # No answer is no proof of a stop: the process may be crashing right now.
            return f"the connection dropped before an answer ({exc})"
        if status == 404:  # most often: the app was never given servercov's route
            return route_advice.answered_404(stopping.shutdown_path, self.process.argv,
                                             self.process.cwd)
        if status >= 400:
            return f"{stopping.shutdown_path} answered {status}"
        return None

    def stop(self, before_signal: Callable[[], list[str]] | None) -> StopOutcome:
        """Stop in order (path, signal, KILL) and reap the whole group; idempotent."""
        stopping = self.stopping
        return self.process.stop(
            request_shutdown=self._request_shutdown if stopping.shutdown_path else None,
            stop_signal=stopping.stop_signal, timeout=stopping.timeout,
            before_signal=before_signal)
