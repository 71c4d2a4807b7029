"""The nose2 plugin: ``nose2 --with-servercov`` over :class:`ServerSession`.

The hooks stay thin: start the measured server before the first test, stop
it and report after the last one (also after a failure, an error or Ctrl-C,
since nose2 calls stopTestRun in a ``finally``), and fail the run through
``wasSuccessful`` when the server or the coverage data went wrong.
"""

from __future__ import annotations

import sys
from typing import Any

from nose2.events import Plugin

from nose2_servercov.config import find_rcfile, load_config
from nose2_servercov.errors import ServercovError
from nose2_servercov.testrun import MeasuredTestRun

NOSE2_ONLY_KEYS = ("always-on", "rcfile")


class ServerCoverage(Plugin):
    """Measure the coverage of a live server while the tests talk to it over HTTP."""

    configSection = "servercov"
    commandLineSwitch = (None, "with-servercov",
                         "Start the server of the rcfile's [servercov] section under "
                         "coverage, run the tests against it, stop it and report")

    def __init__(self) -> None:
        self.rcfile = self.config.as_str("rcfile", "")
        self.session_obj: MeasuredTestRun | None = None
        self.failure: str | None = None
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
        try:
            config = load_config(find_rcfile(self.rcfile or None, flag="--servercov-rcfile"),
                                 self._overrides())
            run = MeasuredTestRun(config, verbose=self.session.verbosity > 1)
            run.start()
        except ServercovError as exc:
            self._fail(str(exc))
            event.handled = True  # nose2 then executes no test
            return
        self.session_obj = run

    def stopTestRun(self, event: Any) -> None:
        """Stop the server, combine its data and write the reports."""
        if self.session_obj is None:
            return  # never started: the start-up error is the whole story
        run, self.session_obj = self.session_obj, None
        if self.session.verbosity == 1:
            sys.stderr.write("\n")  # end nose2's line of dots
        end = run.finish()
        for problem in end.problems:
            self._fail(problem)
        if end.failed_under:
            self.failure = self.failure or "fail_under"

    def wasSuccessful(self, event: Any) -> None:
        """Fail the run when the server or its coverage went wrong."""
        if self.failure:
            event.success = False
