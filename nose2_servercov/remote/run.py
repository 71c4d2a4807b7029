"""A run against remote agents: nothing starts here; the agents are waited for, then collected.

:func:`~nose2_servercov.engine.run.open_run` chooses it when ``[servercov]
remotes`` is set and ``command`` is not, for every entry point.  Its start
waits for every agent's ``/status`` and for ``ready_path`` on ``url`` (under
``startup_timeout``); its stop collects from every agent (``/stop``, or
``/snapshot`` with ``remote_stop = false``), combines with ``[paths]`` and
reports; an agent that failed fails the run.
"""

from __future__ import annotations

import os
import time
from typing import IO

from nose2_servercov import protocol
from nose2_servercov.engine import data
from nose2_servercov.engine.config import ServerConfig, preflight
from nose2_servercov.engine.run import MeasuredRun
from nose2_servercov.engine.server import network
from nose2_servercov.engine.server.process import StopOutcome
from nose2_servercov.errors import ConfigError, ServerStartError
from nose2_servercov.remote.client import AgentError, agent_status, reason
from nose2_servercov.remote.collector import Collected, collect, refuse_beside_a_serve


class RemoteRun(MeasuredRun):
    """Start nothing, wait for the remote servers, collect their agents' data at the end."""

    def __init__(self, config: ServerConfig, *, verbose: bool = False,
                 err: IO[str] | None = None, out: IO[str] | None = None) -> None:
        super().__init__(config, verbose=verbose, err=err, out=out)
        self.settings = data.server_settings(config.rcfile)
        self.token = os.environ.get(protocol.CONTROL_TOKEN_VARIABLE, "").strip() or None
        self.collected: Collected | None = None

    def start(self) -> str:
        """Wait for every agent's /status and for ``ready_path`` on ``url``; return ``url``."""
        config = self.config
        preflight.check_before_start(config, self.settings)  # nothing to undo yet
        if "{port}" in config.url and config.port == 0:
            raise ConfigError(f"{config.rcfile}: [servercov] url: with remotes and no command, "
                              "expected where the tests reach the remote servers (url, or host "
                              "and port), got port 0")
        url = config.url.format(host=config.host, port=config.port).rstrip("/")
        refuse_beside_a_serve(config)
        data.erase_stale_data(self.settings)
        started = time.monotonic()
        deadline = started + config.startup_timeout
        self._wait_for_agents(deadline)
        self._wait_until_ready(url, deadline)
        self.say(f"remote servers ready: {url}, {len(config.remotes)} agent"
                 f"{'s' if len(config.remotes) != 1 else ''}, in "
                 f"{time.monotonic() - started:.2f} s")
        self.url = url  # started: the stop collects from now on
        return url

    def _wait_for_agents(self, deadline: float) -> None:
        """Wait until every agent answers /status; a refused token ends the wait at once."""
        waiting = list(self.config.remotes)
        last: dict[str, str] = {}
        while waiting:
            for url in list(waiting):
                try:
                    agent_status(url, token=self.token, timeout=2.0)
                    waiting.remove(url)
                except AgentError as exc:
                    last[url] = str(exc)
                    if " 401: " in str(exc) or " 403: " in str(exc):
                        raise ServerStartError(str(exc)) from None
            if waiting and time.monotonic() > deadline:
                raise ServerStartError(
                    f"agents did not answer /status within {self.config.startup_timeout:g} s "
                    f"(startup_timeout): " + "; ".join(last[url] for url in waiting))
            if waiting:
                time.sleep(0.1)

    def _wait_until_ready(self, url: str, deadline: float) -> None:
        """Wait until ``ready_path`` on ``url`` answers with a status < 500, if one is set."""
        ready_path = self.config.ready_path
        while ready_path:
            try:
                if network.http_status("GET", url + ready_path, timeout=2.0) < 500:
                    return
                why = "answered >= 500"
            except OSError as exc:
                why = reason(exc)
            if time.monotonic() > deadline:
                raise ServerStartError(f"{url}{ready_path} did not answer with a status < 500 "
                                       f"within {self.config.startup_timeout:g} s "
                                       f"(startup_timeout): {why}")
            time.sleep(0.1)

    def guard(self, pid: int) -> None:
        """Do nothing: no server runs here that ``pid`` could outlive."""

    def running(self) -> bool:
        """Return True: the remote servers are the agents' to watch, not ours."""
        return True

    def stop(self, *, quiet: bool = False) -> StopOutcome | None:
        """Collect from every agent once (``/stop`` or ``/snapshot``), unless ``quiet``.

        No server of ours stops here, so there is no outcome; ``quiet`` (the
        way out after a failure) and a run that never started take no data.
        """
        if self.url and not quiet:
            self.collect()
        return None

    def collect(self) -> Collected:
        """Collect from every agent once (``/stop`` or ``/snapshot``); idempotent."""
        if self.collected is None:
            self.collected = collect(self.config, list(self.config.remotes), token=self.token,
                                     stop=self.config.remote_stop, out=self.out, err=self.err,
                                     in_run=True)
        return self.collected

    def finish(self) -> data.ReportResult:
        """Collect, combine and report; raise naming the agents that failed."""
        collected = self.collect()
        if collected.failed:
            raise AgentError(collected.failures())
        assert collected.result is not None
        return collected.result
