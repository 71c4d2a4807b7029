"""One measured run, chosen once: a server started here, or remote servers collected from.

Front ends call :func:`open_run`, then only what :class:`MeasuredRun` offers.
As pytest-cov's engine picks its controller, the choice is made once: with
``remotes`` and no ``command``, :class:`~nose2_servercov.remote.run.RemoteRun`
starts nothing here and collects from the agents; else :class:`LocalRun`
starts the configured server measured.  A run knows nothing of nose2 or of
the command line.  ``nose2_servercov.session.ServerSession`` is deprecated.
"""

from __future__ import annotations

import abc
import atexit
import os
import secrets
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

from coverage.config import CoverageConfig

from nose2_servercov import protocol
from nose2_servercov.engine import data, sections
from nose2_servercov.engine.config import ServerConfig, cores, greenlets, known_bugs, preflight
from nose2_servercov.engine.data import accounting, exchange
from nose2_servercov.engine.server.process import ServerProcess, StopOutcome
from nose2_servercov.engine.server.runlock import RunLock
from nose2_servercov.engine.server.service import Readiness, Service, Stopping
from nose2_servercov.errors import (
    ConfigError,
    DataError,
    LostDataError,
    ServerStartError,
)

BOOTSTRAP_DIR = Path(__file__).resolve().parent.parent / "bootstrap"


class MeasuredRun(abc.ABC):
    """Start the server the tests use, hand out its URL, stop it, combine its data, report."""

    settings: CoverageConfig  # coverage's own settings: the data file, the reports

    def __init__(self, config: ServerConfig, *, verbose: bool = False,
                 err: IO[str] | None = None, out: IO[str] | None = None) -> None:
        self.config = config
        self.verbose = verbose
        self.err = err or sys.stderr
        self.out = out or sys.stdout
        self.url = ""  # where the tests reach the server, once started

    def say(self, message: str) -> None:
        """Print one ``servercov:`` line."""
        self.err.write(f"servercov: {message}\n")
        self.err.flush()

    def test_env(self) -> dict[str, str]:
        """Return what every test process must see while the server runs."""
        env = {protocol.URL_VARIABLE: self.url}
        if self.config.contexts == "test":
            env[protocol.CONTEXTS_VARIABLE] = "test"
        return env

    @abc.abstractmethod
    def start(self) -> str:
        """Make the server ready for the tests; return its URL."""

    @abc.abstractmethod
    def guard(self, pid: int) -> None:
        """End ``pid`` (the test command of ``servercov run``) with the run if we die."""

    @abc.abstractmethod
    def running(self) -> bool:
        """Return whether the server still runs."""

    @abc.abstractmethod
    def stop(self, *, quiet: bool = False) -> StopOutcome | None:
        """Stop the server; idempotent.  ``quiet``: the way out after a failure."""

    def stop_problems(self) -> list[str]:
        """Return what went wrong beside the server, once stopped: a section that ended early."""
        return []

    @abc.abstractmethod
    def finish(self) -> data.ReportResult:
        """Stop the server, combine every process's data, write the reports."""


def open_run(config: ServerConfig, *, verbose: bool = False, err: IO[str] | None = None,
             out: IO[str] | None = None, snapshots: bool = False) -> MeasuredRun:
    """Return the run ``config`` asks for, chosen once: against remotes, or started here.

    With ``remotes`` and no ``command`` nothing starts here: the agents are
    collected from.  ``snapshots``: the server's processes answer snapshots
    and autosave (``servercov serve``); only a server started here has them.
    """
    if config.remotes and not config.command:
        from nose2_servercov.remote.run import RemoteRun  # only such runs need http, ssl

        return RemoteRun(config, verbose=verbose, err=err, out=out)
    return LocalRun(config, verbose=verbose, err=err, out=out, snapshots=snapshots)


class LocalRun(MeasuredRun):
    """Start the configured server here, measured; stop it, account for its data, report."""

    def __init__(self, config: ServerConfig, *, verbose: bool = False,
                 err: IO[str] | None = None, out: IO[str] | None = None,
                 snapshots: bool = False) -> None:
        super().__init__(config, verbose=verbose, err=err, out=out)
        # gunicorn -k gevent and the like: coverage must know before anything reads them.
        self.settings = greenlets.announced(data.server_settings(config.rcfile), config.command)
        if config.contexts == "test":
            self.settings.show_contexts = True  # [html] show_contexts
        self.core = cores.choose_core(self.settings, config.core, server_env=config.env,
                                      contexts_test=config.contexts == "test",
                                      origin=str(config.rcfile))
        self.settings.core = self.core.core  # the serialized settings win in the server
        # Server processes answer snapshots (`servercov serve`), autosave and
        # the save before a stop signal through files in this folder: beside the
        # data file for `serve` (snapshot finds it there), else the run folder.
        self.control: Path | None = data.control_dir(self.settings) if snapshots else None
        # This run's private folder: every measured process registers there.
        self.run_dir: Path | None = None
        self._alive_at_stop: frozenset[int] = frozenset()
        self._answers_before_signal = exchange.Answers()
        self.result: data.ReportResult | None = None  # the final report's, once written
        self.token = secrets.token_urlsafe(32)
        self.port = config.port
        self.process: ServerProcess | None = None  # the server's, once started
        self.service: Service | None = None
        self.sections: sections.Sections | None = None  # the [servercov:NAME] ones
        self._section_of: dict[int, str] = {}  # pid -> NAME, seen before the stop
        self.run_lock = RunLock(data.control_dir(self.settings), say=self.say)
        refused = known_bugs.refusal(config.command, config.cwd, self.server_env())
        if refused:  # before anything starts
            raise ConfigError(f"{config.rcfile}: [servercov] command: {refused}")

    def test_env(self) -> dict[str, str]:
        """Return what every test process sees: the server's URL, and every section's."""
        env = super().test_env()
        if self.sections is not None:
            env.update(self.sections.test_env())
        return env

    def server_env(self, own: Mapping[str, str] | None = None) -> dict[str, str]:
        """Return a measured process's environment: ours, its config's, what measures it."""
        env = dict(os.environ)
        values = {**(self.sections.values() if self.sections else {}), "host": self.config.host,
                  "port": str(self.port), "url": self.url}
        env.update({name: sections.fill(value, values)
                    for name, value in (self.config.env if own is None else own).items()})
        python_path = [str(BOOTSTRAP_DIR)] + [p for p in [env.get("PYTHONPATH")] if p]
        env.update(self.test_env())
        env.update({
            protocol.TOKEN_VARIABLE: self.token,
            protocol.COVERAGE_START_VARIABLE: str(self.config.rcfile),
            protocol.COVERAGE_CONFIG_VARIABLE: self.settings.serialize(),
            "PYTHONPATH": os.pathsep.join(python_path),
            "PYTHONUNBUFFERED": "1",
        })
        env.pop(protocol.CONTROL_TOKEN_VARIABLE, None)  # the serve's token is not the app's
        env.pop(protocol.COVERAGE_FILE_VARIABLE, None)  # the settings name the data file already
        for name in protocol.RUN_VARIABLES:
            env.pop(name, None)  # an outer servercov's, not ours
        if self.run_dir is not None:
            env[protocol.RUN_DIR_VARIABLE] = str(self.run_dir)
        if self.control is not None:
            env[protocol.CONTROL_VARIABLE] = str(self.control)
            if self.config.autosave:
                env[protocol.AUTOSAVE_VARIABLE] = f"{self.config.autosave:g}"
        return env

    def _command(self) -> list[str]:
        values = {**(self.sections.values() if self.sections else {}), "python": sys.executable,
                  "host": self.config.host, "port": str(self.port), "url": self.url}
        return [word.format(**values) for word in self.config.command]

    def start(self) -> str:
        """Start the sections, then the server, measured; wait until ready; return its URL.

        First the run lock (one run at a time per data folder: refused in one
        line, nothing started, nothing erased), then what an earlier run left
        running is stopped, and only then are stale data files erased.
        """
        preflight.check_before_start(self.config, self.settings)  # nothing to undo yet
        # LIFO at exit: the server is stopped (registered below) before the lock goes.
        atexit.register(self.run_lock.release)
        self.run_lock.acquire(stop_signal=self.config.stop_signal,
                              timeout=self.config.shutdown_timeout)
        try:
            return self._start()
        except BaseException:
            if self.process is None or self.process.stopped:
                if self.sections is not None:  # the server never ran: nothing else will
                    self.sections.stop(save=None, quiet=True)
                if self.run_dir is not None:
                    accounting.remove_run_dir(self.run_dir)
                self.run_lock.release()  # nothing of this run is left to write data
            raise

    def _prepare(self) -> None:
        """Make the run folder, choose every port, and title the report: nothing started yet."""
        data.erase_stale_data(self.settings)
        self.run_dir = accounting.make_run_dir()
        atexit.register(accounting.remove_run_dir, self.run_dir)
        if self.control is None:
            self.control = self.run_dir
        else:  # the run lock made it this user's own already; made again if removed since
            self.run_lock.make_folder()
        self.port = sections.pick_port(self.config.host, self.config.port,
                                       rcfile=self.config.rcfile, section="servercov")
        placed = sections.place(self.config, taken=[self.port])
        self.url = self.config.url.format(
            host=self.config.host, port=self.port,
            **{k: v for p in placed for k, v in p.values().items()}).rstrip("/")
        self.sections = sections.Sections(placed, config=self.config, token=self.token,
                                          echo=self.err if self.verbose else None,
                                          err=self.err, say=self.say)
        data.settings.title_the_html_report(self.settings, self.config.rcfile, self._command())

    def _start(self) -> str:
        self._prepare()
        assert self.sections is not None
        atexit.register(self.stop)  # whatever is started from now on is stopped at exit
        hold = self.run_lock.held()
        self.sections.start(self.server_env({}), hold=hold)  # each adds its own env
        config = self.config
        self.service = service = Service(
            self._command(), cwd=config.cwd, env=self.server_env(), log=config.log,
            echo=self.err if self.verbose else None, rcfile=config.rcfile,
            readiness=Readiness(config.host, self.port, self.url, config.ready_path, None,
                                config.startup_timeout),
            stopping=Stopping(config.shutdown_path, config.shutdown_method, config.stop_signal,
                              config.shutdown_timeout, self.token))
        service.start(hold=hold)
        self.process = service.process
        self.run_lock.record_server(service.pid)
        try:
            seconds = service.wait_until_ready(
                progress=self._show_progress(service.awaited()) if self.err.isatty() else None)
        except ServerStartError:
            self.stop(quiet=True)
            raise
        finally:
            if self.err.isatty():
                self.err.write("\r\033[K")  # clear the progress line
        self.say(f"server started: pid {service.pid}, {self.url}, "
                 f"ready in {seconds:.2f} s, {self.core.describe()}, rcfile {config.rcfile}")
        return self.url

    def stop_problems(self) -> list[str]:
        """Return the sections that ended with an error before the stop, one line each."""
        return list(self.sections.problems) if self.sections is not None else []

    def measured_groups(self) -> list[int]:
        """Return the process group of every measured process: the server's, the sections'."""
        groups = [self.process.pid] if self.process is not None else []
        return groups + (self.sections.measured_groups() if self.sections else [])

    def guard(self, pid: int) -> None:
        """End ``pid`` (the test command of ``servercov run``) with the server if we die."""
        if self.process is not None:
            self.process.guard(pid)
        self.run_lock.record_command(pid)

    def running(self) -> bool:
        """Return whether the server command still runs."""
        return self.process is not None and self.process.exit_code() is None

    def _show_progress(self, awaited: str) -> Callable[[float], None]:
        def show(seconds: float) -> None:
            self.err.write(f"\rservercov: waiting {seconds:.0f} s of "
                           f"{self.config.startup_timeout:g} for {awaited}")
            self.err.flush()
        return show

    def stop(self, *, quiet: bool = False) -> StopOutcome | None:
        """Stop the server, then every section in reverse order; reap every group; idempotent."""
        outcome = self._stop_server(quiet=quiet)
        if self.sections is not None:
            if not self._section_of and self.sections.started:
                self._section_of = self.sections.members()
            self.sections.stop(save=self._save_group, quiet=quiet,
                               tail_on_notes=not self.verbose)
        return outcome

    def _stop_server(self, *, quiet: bool) -> StopOutcome | None:
        if self.process is None or self.service is None:
            return None
        first = not self.process.stopped
        if first and self.run_dir is not None:
            self._alive_at_stop = frozenset(
                pid for pid, proc in accounting.registrations(self.run_dir).items()
                if proc.is_alive())
            if self.sections is not None:  # before any stop: who belongs to which section
                self._section_of = self.sections.members()
        outcome = self.service.stop(lambda: self._save_group(self.process.pid)
                                    if self.process else [])
        self.run_lock.server_gone = not self.process.alive()  # then a next session may lock
        if first and not quiet:
            self.say(f"server stopped by {outcome.step} in {outcome.seconds:.2f} s")
            for note in outcome.notes:
                self.say(f"  {note}")
            if outcome.notes and not self.verbose:
                self.err.write(self.process.tail() + "\n")
        return outcome

    def _save_group(self, pgid: int) -> list[str]:
        """Have every measured process of group ``pgid`` put its data on disk before a signal."""
        if self.control is None:
            return []
        answers, notes = exchange.save_before_signal(self.control, pgid,
                                                     timeout=self.config.shutdown_timeout)
        self._answers_before_signal = self._answers_before_signal.merged(answers)
        return notes

    def account(self, outcome: StopOutcome | None) -> accounting.Accounting:
        """Hold the registered processes against the data on disk; say every loss."""
        assert self.process is not None and self.run_dir is not None
        facts = accounting.StopFacts(
            leader_pid=self.process.pid, leader_status=self.process.exit_code(),
            step=outcome.step if outcome else "", stop_signal=self.config.stop_signal.name,
            alive_at_stop=self._alive_at_stop,
            dumped_before_signal=self._answers_before_signal.dumped,
            empty_before_signal=self._answers_before_signal.empty)
        found = accounting.account(self.run_dir, self.settings, facts)
        if self._section_of:
            parents = {pid: proc.ppid for pid, proc in accounting.registrations(
                self.run_dir).items()}
            found.losses = [sections.with_section(line, self._section_of, parents)
                            for line in found.losses]
            found.warnings = [sections.with_section(line, self._section_of, parents)
                              for line in found.warnings]
        prefix = "warning: lost data" if self.config.lost_data == "warn" else "lost data"
        for line in found.losses:
            self.say(f"{prefix}: {line}")
        for line in found.warnings:
            self.say(f"warning: {line}")
        return found

    def _nothing_to_report(self, found: accounting.Accounting) -> DataError:
        if found.losses and not found.good_files:
            error = LostDataError if self.config.lost_data == "fail" else DataError
            return error("no coverage data to report: every measured server process lost "
                         "its data (named above)")
        if found.registered == 0:
            return DataError(
                "no server process was measured: servercov's start-up hook ran in no "
                "server process (is the server a Python program? does its command replace "
                "PYTHONPATH?); see the server's output above")
        source = ", ".join(self.settings.source or ()) or "(not set)"
        return DataError(f"the {found.registered} measured server process"
                         f"{'es' if found.registered > 1 else ''} ran no code of "
                         f"[run] source = {source}: check [run] source")

    def finish(self) -> data.ReportResult:
        """Stop the server, account for every process's data, combine it, write the reports."""
        try:
            return self._finish()
        finally:
            self.run_lock.release()  # the reports are written: the next run may erase

    def _finish(self) -> data.ReportResult:
        if self.process is None or self.run_dir is None:
            raise ServerStartError("the server was not started: there is nothing to report")
        outcome = self.stop()
        if data.save_runner_data(self.settings):
            self.say("saved the test runner's own coverage data to combine it too")
        try:
            found = self.account(outcome)
            if not found.measured_any:
                raise self._nothing_to_report(found)
            result = data.combine_and_report(self.settings, self.config.reports, self.out,
                                             files=found.good_files)
        finally:
            data.erase_control_files(self.settings)  # the dumps were combined with the rest
            if self.run_dir is not None:
                accounting.remove_run_dir(self.run_dir)
        result.lost_data = found.lost_data and self.config.lost_data == "fail"
        count = len(result.combined)
        self.say(f"combined {count} data file{'s' if count > 1 else ''} into "
                 f"{self.settings.data_file}")
        for name, place in result.outputs:
            if place != "terminal":
                self.say(f"{name} report: {place}")
        if result.failed_under:
            self.say(f"total coverage {result.total:.2f}% is under fail_under "
                     f"{result.fail_under:g}")
        self.result = result
        return result
