"""The nose2 plugin: ``nose2 --with-servercov`` over :class:`ServerSession`.

The hooks stay thin: start the measured server before the first test, stop
it and report after the last one (also after a failure, an error or Ctrl-C,
since nose2 calls stopTestRun in a ``finally``), and fail the run through
``wasSuccessful`` when the server or the coverage data went wrong.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from nose2.events import Plugin

from nose2_servercov.config import find_rcfile, load_config
from nose2_servercov.errors import ServercovError
from nose2_servercov.session import ServerSession

NOSE2_ONLY_KEYS = ("always-on", "rcfile")


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    """Unwind the test run on SIGTERM, so the server is stopped and the data kept."""
    raise SystemExit(128 + signum)


class ServerCoverage(Plugin):
    """Measure the coverage of a live server while the tests talk to it over HTTP."""

    configSection = "servercov"
    commandLineSwitch = (None, "with-servercov",
                         "Start the server of the rcfile's [servercov] section under "
                         "coverage, run the tests against it, stop it and report")

    def __init__(self) -> None:
        self.rcfile = self.config.as_str("rcfile", "")
        self.session_obj: ServerSession | None = None
        self.failure: str | None = None
        self.saved_env: dict[str, str | None] = {}
        self.saved_sigterm: Any = None
        self.addArgument(self._set_rcfile, None, "servercov-rcfile",
                         "rcfile with the [servercov] section (default: .apirc, "
                         "else .coveragerc); implies --with-servercov")

    def _set_rcfile(self, values: list[str]) -> None:
        self.rcfile = values[0]
        if not self.registered:
            self.register()

    def _overrides(self) -> dict[str, str]:
        parser = self.session.config
        if not parser.has_section(self.configSection):
            return {}
        return {key: value for key, value in parser.items(self.configSection)
                if key not in NOSE2_ONLY_KEYS}

    def _fail(self, message: str) -> None:
        self.failure = self.failure or message
        sys.stderr.write(f"servercov: error: {message}\n")
        sys.stderr.flush()

    def startTestRun(self, event: Any) -> None:
        """Start the measured server; on failure, run no test."""
        try:
            config = load_config(find_rcfile(self.rcfile or None), self._overrides())
            self.session_obj = ServerSession(config, verbose=self.session.verbosity > 1)
            self.session_obj.start()
        except ServercovError as exc:
            self._fail(str(exc))
            event.handled = True  # nose2 then executes no test
            return
        for name, value in self.session_obj.test_env().items():
            self.saved_env[name] = os.environ.get(name)
            os.environ[name] = value
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            self.saved_sigterm = signal.signal(signal.SIGTERM, _exit_on_sigterm)

    def stopTestRun(self, event: Any) -> None:
        """Stop the server, combine its data and write the reports."""
        if self.session_obj is None:
            return
        session, self.session_obj = self.session_obj, None
        if self.session.verbosity == 1:
            sys.stderr.write("\n")  # end nose2's line of dots
        try:
            outcome = session.stop()
            if outcome is not None and outcome.exited_early:
                self._fail(f"the server exited with code {outcome.exit_code} while the tests "
                           "ran; what it executed until then is kept")
            result = session.finish()
        except ServercovError as exc:
            self._fail(str(exc))
            return
        finally:
            self._restore()
        if result.lost_data:
            self.failure = self.failure or "lost data"
        if result.failed_under:
            self.failure = self.failure or "fail_under"

    def _restore(self) -> None:
        """Give back the environment and the SIGTERM handler the run had before."""
        for name, value in self.saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self.saved_env = {}
        if self.saved_sigterm is not None:
            signal.signal(signal.SIGTERM, self.saved_sigterm)
            self.saved_sigterm = None

    def wasSuccessful(self, event: Any) -> None:
        """Fail the run when the server or its coverage went wrong."""
        if self.failure:
            event.success = False
