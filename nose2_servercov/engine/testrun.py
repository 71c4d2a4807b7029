"""The measured server of a test run inside this process, for the nose2 and pytest plugins.

Both in-process front ends need the same orchestration around the run that
:func:`~nose2_servercov.engine.run.open_run` chooses: the environment the tests
see while the server runs, a SIGTERM that unwinds the run (so the server is
stopped and its data kept), and what a server that exited by itself means
for the run.  It lives here once; the plugins only map it onto their hooks.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from nose2_servercov.engine import data
from nose2_servercov.engine.config import ServerConfig
from nose2_servercov.engine.run import MeasuredRun, open_run
from nose2_servercov.errors import ServercovError, ServerStartError, describe_error

# What a server says when it was started in a folder where the app is not.
_NOT_FOUND_SIGNS = ("ModuleNotFoundError", "No module named", "No such file or directory",
                    "can't open file")


def _interrupt_on_sigterm(signum: int, frame: Any) -> None:
    """Unwind the test run on SIGTERM as on Ctrl-C, so the server is stopped and the data kept.

    KeyboardInterrupt, not SystemExit: unittest records a SystemExit as the
    current test's error and runs the next test.
    """
    raise KeyboardInterrupt


def start_failure_hint(config: ServerConfig, message: str) -> str:
    """Explain a server that cannot find the app because it ran in the rcfile's folder."""
    if config.cwd == Path.cwd().resolve():
        return ""
    if not any(sign in message for sign in _NOT_FOUND_SIGNS):
        return ""
    return (f"\nservercov: the server ran in {config.cwd} (the folder of {config.rcfile.name}, "
            "or its [servercov] cwd): keep the rcfile at the project root, or set cwd")


@dataclass
class RunEnd:
    """How the measured server ended: what went wrong, and the report."""

    problems: list[str] = field(default_factory=list)
    result: data.ReportResult | None = None

    @property
    def failed_under(self) -> bool:
        """Return whether ``[report] fail_under`` was not met."""
        return self.result is not None and self.result.failed_under

    @property
    def lost_data(self) -> bool:
        """Return whether a measured process lost its data (with ``lost_data = fail``)."""
        return self.result is not None and self.result.lost_data


class MeasuredTestRun:
    """Start the server for the tests of this process, hand them its URL, stop and report.

    ``on_sigterm`` handles SIGTERM while the server runs if nothing else does;
    None leaves SIGTERM alone (the nose2 plugin owns both stop signals).
    """

    def __init__(self, config: ServerConfig, *, verbose: bool = False,
                 err: IO[str] | None = None, out: IO[str] | None = None,
                 on_sigterm: Callable[[int, Any], None] | None = _interrupt_on_sigterm,
                 ) -> None:
        self.config = config
        self.verbose = verbose
        self.err = err
        self.out = out
        self.on_sigterm = on_sigterm
        self.run: MeasuredRun | None = None  # only once the server is up
        self.saved_env: dict[str, str | None] = {}
        self.saved_sigterm: Any = None

    def start(self) -> str:
        """Start the server, export its environment to the tests; return its URL.

        On a start-up failure nothing is left to stop or report: the error is
        raised and a later :meth:`finish` does nothing.
        """
        run = open_run(self.config, verbose=self.verbose, err=self.err, out=self.out)
        try:
            url = run.start()
        except ServerStartError as exc:
            run.stop(quiet=True)
            raise ServerStartError(str(exc) + start_failure_hint(self.config, str(exc))) from None
        except BaseException:  # an OSError, a Ctrl-C while it starts: no server left running
            run.stop(quiet=True)
            raise
        self.run = run
        for name, value in run.test_env().items():
            self.saved_env[name] = os.environ.get(name)
            os.environ[name] = value
        if self.on_sigterm is not None and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            self.saved_sigterm = signal.signal(signal.SIGTERM, self.on_sigterm)
        return url

    def finish(self) -> RunEnd:
        """Stop the server, combine and report; give back the environment and SIGTERM.

        Every problem is returned, not raised: a server that exited by itself
        before the stop, an error combining or reporting.
        """
        end = RunEnd()
        run, self.run = self.run, None
        if run is None:
            return end
        try:
            outcome = run.stop()
            if outcome is not None and outcome.exited_early:
                end.problems.append(
                    f"the server exited with code {outcome.exit_code} while the tests ran; "
                    "what it executed until then is kept")
            end.problems.extend(run.stop_problems())
            end.result = run.finish()
        except (ServercovError, OSError, ValueError) as exc:
            run.stop(quiet=True)
            end.problems.append(describe_error(exc))
        finally:
            self._restore()
        return end

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
