"""The nose2 plugin: ``nose2 --with-servercov`` over the engine's measured run.

The hooks stay thin: start the measured server before the first test, stop
it and report after the last one (also after a failure, an error or Ctrl-C,
since nose2 calls stopTestRun in a ``finally``), and fail the run through
``wasSuccessful`` when the server or the coverage data went wrong.

Ctrl-C: nose2 lets the KeyboardInterrupt run through stopTestRun and out of
``main`` as a traceback, and a second Ctrl-C inside stopTestRun used to cut
the stop and the report short (issue 8).  So while the server runs, the
plugin owns SIGINT and SIGTERM: the first one ends the tests (and is caught
around the test execution, so nose2 reports and exits non-zero), every later
one is only noted; the stop and the report are bounded by their own timeouts.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

from nose2.events import Plugin

from nose2_servercov.engine.config import find_rcfile, load_config
from nose2_servercov.engine.interrupts import OneShotInterrupt
from nose2_servercov.engine.testrun import MeasuredTestRun
from nose2_servercov.errors import ServercovError, describe_error

NOSE2_ONLY_KEYS = ("always-on", "rcfile")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Interrupts(OneShotInterrupt):
    """SIGINT/SIGTERM during a measured run: the first unwinds the tests, later ones wait.

    It raises KeyboardInterrupt, at most once and only while the tests run
    or the server starts; the stop and the report are never cut short.  Not
    SystemExit for SIGTERM: unittest records that as an error of the current
    test and runs the next one, while it lets a KeyboardInterrupt end the run.
    """

    def again(self, signum: int) -> None:
        if len(self.received) == 2:
            # os.write, not sys.stderr: a handler may run inside a write to sys.stderr.
            os.write(2, b"\nservercov: still stopping the server and writing the reports; "
                        b"they end within the stop's timeouts\n")


class ServerCoverage(Plugin):
    """Measure the coverage of a live server while the tests talk to it over HTTP."""

    configSection = "servercov"
    commandLineSwitch = (None, "with-servercov",
                         "Start the server of the rcfile's [servercov] section under "
                         "coverage, run the tests against it, stop it and report")

    def __init__(self) -> None:
        self.rcfile = self.config.as_str("rcfile", "")
        self.run: MeasuredTestRun | None = None
        self.failure: str | None = None
        self.saved_signals: dict[int, Any] = {}
        self.interrupts = _Interrupts()
        self.line_ended = False
        self.addArgument(self._set_rcfile, None, "servercov-rcfile",
                         "rcfile with the servercov section (default: the first of .apirc, "
                         ".coveragerc, setup.cfg, tox.ini, pyproject.toml that has one); "
                         "implies --with-servercov. Example: nose2 --with-servercov "
                         "--servercov-rcfile ci/.apirc -v")

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
        self._own_stop_signals()
        try:
            config = load_config(find_rcfile(self.rcfile or None, flag="--servercov-rcfile"),
                                 self._overrides())
            run = MeasuredTestRun(config, verbose=self.session.verbosity > 1, on_sigterm=None)
            run.start()  # on failure it stops what it started
        except (ServercovError, OSError, ValueError, KeyboardInterrupt) as exc:
            self.interrupts.raising = False
            self._fail(describe_error(exc) if not isinstance(exc, KeyboardInterrupt) else
                       "interrupted while the server was starting: it was stopped, and no "
                       "test ran")
            self._restore()
            event.handled = True  # nose2 then executes no test
            return
        self.run = run
        event.executeTests = self._interruptible(event.executeTests)

    def _own_stop_signals(self) -> None:
        """Route SIGINT and SIGTERM to the plugin, unless someone else handles them already."""
        self.interrupts = _Interrupts()
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set handlers
        defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
        for sig in STOP_SIGNALS:
            if signal.getsignal(sig) == defaults[sig]:
                self.saved_signals[sig] = signal.signal(sig, self.interrupts)

    def _interruptible(self, execute: Any) -> Any:
        """Wrap nose2's test execution: a Ctrl-C ends the tests, not the run."""
        def execute_tests(suite: Any, result: Any) -> Any:
            try:
                return execute(suite, result)
            except KeyboardInterrupt:
                sys.stderr.write("\nservercov: interrupted: stopping the server, then writing "
                                 "the reports\n")
                sys.stderr.flush()
                self.line_ended = True
                return None
            finally:
                self.interrupts.raising = False
        return execute_tests

    def stopTestRun(self, event: Any) -> None:
        """Stop the server, combine its data and write the reports."""
        self.interrupts.raising = False  # from here on no signal cuts the stop short
        run, self.run = self.run, None
        if run is not None:
            if self.session.verbosity == 1 and not self.line_ended:
                sys.stderr.write("\n")  # end nose2's line of dots
            end = run.finish()  # it gives back the environment the tests saw
            for problem in end.problems:
                self._fail(problem)
            if end.lost_data:
                self.failure = self.failure or "lost data"
            if end.failed_under:
                self.failure = self.failure or "fail_under"
        self._restore()

    def _restore(self) -> None:
        """Give back the signal handlers the run had before."""
        # Once interrupted, the run is ending: the signals stay ignored, so a later
        # Ctrl-C or TERM cannot kill nose2 or print a traceback between the report
        # and the exit.  SIG_IGN, not our handler: Python's finalization resets
        # Python-level handlers to SIG_DFL, and a signal landing then would kill it.
        for sig, previous in self.saved_signals.items():
            signal.signal(sig, signal.SIG_IGN if self.interrupts.received else previous)
        self.saved_signals = {}
        if self.interrupts.received and not self.failure:
            name = signal.Signals(self.interrupts.received[0]).name
            self._fail(f"interrupted by {name}: the server was stopped "
                       "and what it ran is reported")

    def wasSuccessful(self, event: Any) -> None:
        """Fail the run when the server or its coverage went wrong."""
        if self.failure:
            event.success = False

