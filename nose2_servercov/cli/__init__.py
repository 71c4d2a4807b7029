"""The ``servercov`` command: ``run``, ``serve``, ``snapshot`` and ``stop`` over the engine.

A thin front end: it parses the command line, hands the work to
:class:`~nose2_servercov.engine.run.ServerSession` (and, for ``snapshot``, to
:mod:`nose2_servercov.engine.snapshot`), and is the only place where an error
becomes a ``servercov: error:`` line and an exit status.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

# What ``snapshot`` and ``stop`` need only: they must not import coverage (see
# servestate), so the modules that do are imported where they are used.
from nose2_servercov import __version__
from nose2_servercov.engine.config import ServerConfig, find_rcfile, load_config
from nose2_servercov.engine.interrupts import OneShotInterrupt
from nose2_servercov.engine.servestate import (
    ServeState,
    SnapshotAnswer,
    answer_snapshot_requests,
    ask_for_snapshot,
    exclusive,
    process_start_time,
    read_state,
    running_serve,
    state_path,
)
from nose2_servercov.errors import LostDataError, ServeError, ServercovError, describe_error

if TYPE_CHECKING:
    from nose2_servercov.engine.run import ServerSession
    from nose2_servercov.remote.agent import ControlAgent

ERROR = 1
FAIL_UNDER = 2
LOST_DATA = 3  # a measured server process lost its data (lost_data = fail)
INTERRUPTED = 128 + signal.SIGINT
NOT_FOUND = 127  # as a shell says of a command it cannot find

EXAMPLES = {
    None: """examples:
  servercov run -- python -m unittest discover -s tests
  servercov serve            # in one shell; then, from another one:
  servercov snapshot         # reports of what the server has run so far
  servercov stop             # final reports; serve exits 0""",
    "run": """example:
  servercov run -- python -m unittest discover -s tests
  servercov run --rcfile ci/.apirc -- pytest -q tests/api
  servercov run -- ./smoke-tests.sh     # SERVERCOV_URL holds the server's URL""",
    "serve": """example:
  servercov serve            # runs until Ctrl-C or `servercov stop`, then writes the reports
  servercov serve -v --rcfile staging.apirc
  SERVERCOV_CONTROL_TOKEN=... servercov serve --control 0.0.0.0:8765 \\
      --control-cert cert.pem --control-key key.pem   # for servercov collect elsewhere""",
    "snapshot": """example:
  servercov snapshot         # from another shell in the folder of the running serve""",
    "stop": """example:
  servercov stop             # the serve writes its final reports and exits 0""",
    "collect": """example:
  servercov collect https://api-1:8765 https://api-2:8765   # SERVERCOV_CONTROL_TOKEN set
  servercov collect --stop   # the agents of [servercov] remotes: final data, servers stop""",
}


class _Stop(Exception):
    """SIGINT or SIGTERM arrived: end in the orderly way."""


def _say(message: str) -> None:
    sys.stderr.write(f"servercov: {message}\n")
    sys.stderr.flush()


def _parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="servercov", formatter_class=formatter, epilog=EXAMPLES[None],
        description="Measure the coverage of a live server while any test command, "
                    "or a person, uses it.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)

    def add(name: str, help_text: str, *, verbose: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text,
                                  formatter_class=formatter, epilog=EXAMPLES[name])
        sub.add_argument("--rcfile", metavar="FILE",
                         help="rcfile with the servercov section (default: the first of "
                              ".apirc, .coveragerc, setup.cfg, tox.ini, pyproject.toml "
                              "that has one)")
        if verbose:
            sub.add_argument("-v", "--verbose", action="store_true",
                             help="also show the server's own output")
        return sub

    run = add("run", "Start the server measured, run COMMAND with SERVERCOV_URL set, stop the "
                     "server and report; exit with COMMAND's status.")
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND...",
                     help="the test command and its arguments")
    serve = add("serve", "Run the server measured in the foreground until Ctrl-C, SIGTERM or "
                         "`servercov stop`, then write the final reports.")
    _add_control_options(serve)
    add("snapshot", "Write the reports from what the running serve's processes have "
                    "executed so far, without stopping any.", verbose=False)
    add("stop", "Stop the running serve; it writes the final reports.", verbose=False)
    collect = add("collect", "Fetch the coverage data of remote agents (`servercov serve "
                             "--control`), combine it with the rcfile's [paths] and report.",
                  verbose=False)
    collect.add_argument("--stop", action="store_true",
                         help="stop each agent's server and take its final data (default: "
                              "a snapshot; the servers run on)")
    collect.add_argument("--control-token-file", metavar="FILE",
                         help="file holding the agents' token (default: $SERVERCOV_CONTROL_TOKEN)")
    collect.add_argument("urls", nargs="*", metavar="URL",
                         help="agent URLs, e.g. https://api-1:8765 (default: [servercov] "
                              "remotes)")
    return parser


def _add_control_options(serve: argparse.ArgumentParser) -> None:
    group = serve.add_argument_group(
        "remote control", "a listener in the serve process (never in the app) that answers "
                          "GET /status, POST /snapshot and POST /stop for `servercov collect`")
    group.add_argument("--control", metavar="HOST:PORT",
                       help="where the control listener listens, e.g. 0.0.0.0:8765")
    group.add_argument("--control-token-file", metavar="FILE",
                       help="file holding the token every request must carry (default: "
                            "$SERVERCOV_CONTROL_TOKEN); needed unless HOST is loopback")
    group.add_argument("--control-cert", metavar="FILE", help="PEM certificate: serve HTTPS")
    group.add_argument("--control-key", metavar="FILE", help="PEM private key of --control-cert")
    group.add_argument("--control-insecure", action="store_true",
                       help="allow plain HTTP with a token on a non-loopback address (a private "
                            "network only: the token crosses it in clear)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``servercov`` command; return its exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else ERROR
    handlers = {"run": _run, "serve": _serve_with_control, "snapshot": _snapshot, "stop": _stop,
                "collect": _collect}
    try:
        return handlers[args.subcommand](args)
    except ServercovError as exc:
        _say(f"error: {exc}")
        return ERROR
    # The last net, for what no check foresaw: still one line, never a traceback.
    except (OSError, ValueError) as exc:
        _say(f"error: {describe_error(exc)}")
        return ERROR
    except KeyboardInterrupt:  # before the signal handlers are in place, or after them
        _say("interrupted")
        return INTERRUPTED


def _config(args: argparse.Namespace) -> ServerConfig:
    return load_config(find_rcfile(args.rcfile))


@contextlib.contextmanager
def _on_stop_signals(handler: OneShotInterrupt) -> Iterator[None]:
    """Route SIGINT and SIGTERM to ``handler`` for the block; restore them after.

    Once a stop signal came, they stay ignored instead: the run is ending, and a
    second Ctrl-C between the report and the exit must neither kill servercov
    (losing the command's status) nor print a traceback.
    """
    saved = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        if handler.received:
            _ignore_stop_signals()
        else:
            for sig, previous in saved.items():
                signal.signal(sig, previous)


def _finish(session: ServerSession) -> tuple[str | None, int]:
    """Stop the server, report; return (what went wrong, the status of the report).

    The status: LOST_DATA when a measured process lost its data, FAIL_UNDER
    when fail_under was not met, else 0.
    """
    problem = None
    outcome = session.stop()
    if outcome is not None and outcome.exited_early:
        problem = (f"the server exited with code {outcome.exit_code} before the end; what it "
                   "executed until then is kept")
    try:
        result = session.finish()
    except LostDataError as exc:
        if problem:
            _say(f"error: {problem}")
        _say(f"error: {exc}")
        return None, LOST_DATA
    if result.lost_data:
        return problem, LOST_DATA
    return problem, FAIL_UNDER if result.failed_under else 0


# --- run ---------------------------------------------------------------------------------------

def _command_of(args: argparse.Namespace) -> list[str]:
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise ServercovError("no command to run: servercov run [--rcfile FILE] -- COMMAND...")
    return command


class _StopSignals(OneShotInterrupt):
    """The handler of SIGINT/SIGTERM under ``run`` and ``serve``: raise ``_Stop`` at most once.

    It raises only while the server starts (to cut the wait for ready short)
    and, under ``serve``, while it serves; once ``run``'s command runs it never
    raises, so no signal can land as an exception inside the wait for the
    command and lose its exit status (issue 8).
    """

    def interrupt(self, signum: int) -> None:
        raise _Stop(signum)


@contextlib.contextmanager
def _wakeup_pipe() -> Iterator[int]:
    """Yield a fd that becomes readable on every signal, SIGCHLD included."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    os.set_blocking(write_fd, False)
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    previous_chld = signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    try:
        yield read_fd
    finally:
        signal.signal(signal.SIGCHLD, previous_chld)
        signal.set_wakeup_fd(previous_fd)
        os.close(read_fd)
        os.close(write_fd)


def _wait_for_command(child: subprocess.Popen[bytes], stops: _StopSignals, wakeup: int,
                      grace: float) -> int:
    """Return the command's exit code; pass SIGINT/SIGTERM on to it, then end it after ``grace``.

    The command is reaped by one ``os.waitpid``, which returns its status or
    nothing: unlike an interrupted ``Popen.wait`` it cannot lose it.  Between
    looks, ``select`` sleeps on the wakeup pipe, which every signal (the
    command's SIGCHLD too) makes readable.
    """
    deadline: float | None = None
    forwarded = 0
    while True:
        try:
            pid, status = os.waitpid(child.pid, os.WNOHANG)
        except ChildProcessError:
            # Popen.send_signal polls first, and that poll reaped a command that
            # had just ended: the status is in child.returncode (1 run in ~60).
            if child.returncode is None:
                raise
            return child.returncode
        if pid:
            child.returncode = os.waitstatus_to_exitcode(status)
            return child.returncode
        while forwarded < len(stops.received):
            signum = stops.received[forwarded]
            forwarded += 1
            # A Ctrl-C on the terminal reached the command already (same process group).
            if signum != signal.SIGINT or not _terminal_signals_reach(child):
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signum)
            deadline = deadline or time.monotonic() + grace
        timeout = None if deadline is None else deadline - time.monotonic()
        if timeout is not None and timeout <= 0:
            _say(f"the command was still running {grace:g} s after the signal: killed")
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            deadline = timeout = None
        select.select([wakeup], [], [], timeout)
        with contextlib.suppress(BlockingIOError):
            os.read(wakeup, 512)


def _terminal_signals_reach(child: subprocess.Popen[bytes]) -> bool:
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgid(child.pid)
    except OSError:
        return False


def _exit_status(code: int) -> int:
    return 128 - code if code < 0 else code


def _run(args: argparse.Namespace) -> int:
    command = _command_of(args)
    if shutil.which(command[0]) is None:
        _say(f"error: cannot run {command[0]!r}: no such command (or not executable)")
        return NOT_FOUND
    from nose2_servercov.engine.run import ServerSession

    session = ServerSession(_config(args), verbose=args.verbose)
    stops = _StopSignals()
    try:
        with _on_stop_signals(stops):
            try:
                session.start()
                stops.raising = False
            except _Stop as stop:
                session.stop(quiet=True)
                return 128 + int(stop.args[0])
            code = _run_command(command, session, stops)
            _ignore_stop_signals()
            try:
                problem, status = _finish(session)
            except ServercovError as exc:
                _say(f"error: {exc}")
                return code or ERROR
    finally:
        session.stop(quiet=True)  # whatever went wrong: no server left running
    if problem:
        _say(f"error: {problem}")
    if code:
        return code
    if status == LOST_DATA:
        return LOST_DATA
    return ERROR if problem else status


def _run_command(command: list[str], session: ServerSession, stops: _StopSignals) -> int:
    """Run the test command against the started server; return its exit status."""
    if stops.received:  # stopped between the server's start and the command's
        return 128 + stops.received[0]
    with _wakeup_pipe() as wakeup:
        try:
            child = subprocess.Popen(command, env={**os.environ, **session.test_env()})
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            _say(f"error: cannot run {command[0]!r}: {reason}")
            return NOT_FOUND
        session.guard(child.pid)  # ended with the server if this process dies
        return _exit_status(_wait_for_command(child, stops, wakeup,
                                              session.config.shutdown_timeout))


def _ignore_stop_signals() -> None:
    """Let no second Ctrl-C cut the orderly stop short: it is bounded anyway."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


# --- serve, snapshot, stop ---------------------------------------------------------------------

def _serve(args: argparse.Namespace) -> int:
    config = _config(args)
    control: ControlAgent | None = getattr(args, "control_agent", None)
    path = state_path(config.rcfile)
    previous = read_state(path)
    if previous is not None and previous.is_serve_for(config.rcfile):
        raise ServeError(f"a servercov serve is already running for {config.rcfile} "
                         f"(pid {previous.serve_pid}, {previous.url}); end it with: "
                         "servercov stop")
    if path.exists():
        _say(f"replacing {path}: the serve that wrote it is gone")
        path.unlink()
    from nose2_servercov.engine.run import ServerSession

    session = ServerSession(config, verbose=args.verbose, snapshots=True)
    # Before serve.json exists: a `servercov snapshot` that finds it sends SIGUSR1
    # at once, and SIGUSR1's default would kill the serve.  Kept until exit.
    signal.signal(signal.SIGUSR1, lambda signum, frame: None)
    stops = _StopSignals()
    with _on_stop_signals(stops):
        try:
            url = session.start()
        except _Stop as stop:
            session.stop(quiet=True)
            return 128 + int(stop.args[0])
        try:
            assert session.process is not None
            ServeState.of_this_process(server_pgid=session.process.pid, url=url,
                                       rcfile=config.rcfile,
                                       data_file=session.settings.data_file).write(path)
            if control is not None:
                control.start(session, path)
            _say(f"serving {url} until Ctrl-C or `servercov stop`; `servercov snapshot` "
                 "writes the reports of what it has run so far")
            _serve_until_stopped(session, config, path, stops)
            _say("the server command ended by itself")
        except _Stop as stop:
            _say(f"{signal.Signals(stop.args[0]).name}: stopping the server")
        finally:
            _ignore_stop_signals()
            try:
                # One report at a time: a snapshot may be writing right now.
                with exclusive(path) if path.exists() else contextlib.nullcontext():
                    problem, status = _finish(session)
            finally:
                _remove_state(path)
    if problem:
        _say(f"error: {problem}")
    if status == LOST_DATA:
        return LOST_DATA
    return ERROR if problem else status


def _serve_with_control(args: argparse.Namespace) -> int:
    """Run ``serve``; with ``--control``, its agent listens and /stop gets the final data."""
    config = _config(args)
    if not config.command:
        raise ServeError(f"{config.rcfile}: [servercov] command: serve runs the server, so it "
                         "needs how to start it (remotes are collected with servercov collect)")
    control = args.control_agent = _control_agent(args)  # refused before anything starts
    if control is None:
        return _serve(args)
    try:
        status = _serve(args)
    except ServercovError as exc:
        control.close(error=str(exc))
        raise
    control.close(status=status)
    return status


def _control_agent(args: argparse.Namespace) -> ControlAgent | None:
    from nose2_servercov.remote import agent  # only a serve with --control needs http.server, ssl

    if not args.control:
        for flag in ("control_token_file", "control_cert", "control_key", "control_insecure"):
            if getattr(args, flag):
                raise ServeError(f"--{flag.replace('_', '-')} needs --control HOST:PORT")
        return None
    return agent.ControlAgent(agent.ControlOptions(
        args.control, token_file=args.control_token_file, cert=args.control_cert,
        key=args.control_key, insecure=args.control_insecure), version=__version__)


def _remove_state(path: Path) -> None:
    """Remove the state file if this process wrote it, and its folder if empty."""
    ours = read_state(path)
    if ours is not None and ours.serve_pid == os.getpid():
        path.unlink()
    with contextlib.suppress(OSError):
        path.parent.rmdir()


def _serve_until_stopped(session: ServerSession, config: ServerConfig, path: Path,
                         stops: _StopSignals) -> None:
    """Wait while the server runs, taking the snapshots asked for (SIGUSR1 wakes us).

    A stop signal raises ``_Stop`` out of the wait, never out of a snapshot:
    while one is taken, signals are only recorded, and acted on after it.  A
    request that cannot be answered is named; it never ends the serve.
    """
    with _wakeup_pipe() as wakeup:  # SIGCHLD too: the server's exit is seen at once
        while session.running():
            select.select([wakeup], [], [], 0.2)
            with contextlib.suppress(OSError):
                os.read(wakeup, 512)
            stops.raising = False
            try:
                answer_snapshot_requests(path, lambda: _snapshot_here(session, config, path))
            except OSError as exc:
                _say(f"warning: a snapshot request could not be answered: {describe_error(exc)}")
            if stops.received:
                raise _Stop(stops.received[0])
            stops.raising = True


def _snapshot_here(session: ServerSession, config: ServerConfig, path: Path) -> SnapshotAnswer:
    """Take a snapshot in the serve; return what ``servercov snapshot`` prints and exits with."""
    from nose2_servercov.engine import snapshot

    out, err = io.StringIO(), io.StringIO()
    status = 0
    try:
        assert session.process is not None
        with exclusive(path):  # one report at a time: the agent may be taking one too
            result = snapshot.take_snapshot(session.settings, session.process.pid,
                                            config.reports, timeout=config.shutdown_timeout,
                                            out=out, err=err)
        for name, place in result.outputs:
            if place != "terminal":
                err.write(f"servercov: {name} report: {place}\n")
    except (ServercovError, OSError, ValueError) as exc:
        err.write(f"servercov: error: {describe_error(exc)}\n")
        status = ERROR
    return SnapshotAnswer(status, out.getvalue(), err.getvalue())


def _snapshot(args: argparse.Namespace) -> int:
    config = _config(args)
    state = running_serve(config.rcfile)
    answer = ask_for_snapshot(state, config.rcfile, timeout=config.shutdown_timeout + 120)
    sys.stdout.write(answer.stdout)
    sys.stdout.flush()
    sys.stderr.write(answer.stderr)
    sys.stderr.flush()
    return answer.status


def _stop(args: argparse.Namespace) -> int:
    config = _config(args)
    state = running_serve(config.rcfile)
    os.kill(state.serve_pid, signal.SIGTERM)
    # The serve may escalate through three stop steps, then combine and report.
    timeout = 3 * config.shutdown_timeout + 60
    started = time.monotonic()
    next_progress = started + 1.0
    while process_start_time(state.serve_pid) == state.serve_started:
        waited = time.monotonic() - started
        if waited > timeout:
            raise ServeError(f"the serve (pid {state.serve_pid}) was still running {timeout:g} s "
                             "after SIGTERM")
        if sys.stderr.isatty() and time.monotonic() >= next_progress:
            sys.stderr.write(f"\rservercov: waiting {waited:.0f} s for the serve "
                             f"(pid {state.serve_pid}) to stop and report")
            next_progress += 1.0
        time.sleep(0.05)
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K")
    if state_path(config.rcfile).exists():
        raise ServeError(f"the serve (pid {state.serve_pid}) ended without finishing its "
                         "reports: see its output")
    _say(f"the serve (pid {state.serve_pid}) stopped and wrote its final reports")
    return 0



# --- collect -----------------------------------------------------------------------------------

def _collect(args: argparse.Namespace) -> int:
    from nose2_servercov.remote import agent
    from nose2_servercov.remote import collector as remote

    config = load_config(find_rcfile(args.rcfile), require_command=False)
    urls = remote.agent_urls(args.urls, config)
    token = agent.read_token(args.control_token_file)
    collected = remote.collect(config, urls, token=token, stop=args.stop, out=sys.stdout,
                               err=sys.stderr)
    if collected.failed:
        _say(f"error: {collected.failures()}")
        return ERROR
    assert collected.result is not None
    return FAIL_UNDER if collected.result.failed_under else 0
