"""``servercov run -- COMMAND...``: the server measured while a test command uses it.

The server starts, the command runs as a child with ``SERVERCOV_URL`` set
(:mod:`nose2_servercov.engine.command`), the server stops and the reports
are written; ``run`` exits with the command's status, or with the report's
(SPEC.md, "Entry points").  A stop signal while the server starts ends the
run at once (128+N); once the command runs, it is passed on to the command,
and the server is stopped and reported in order after it.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from nose2_servercov.cli.entry import (
    ERROR,
    LOST_DATA,
    NOT_FOUND,
    config_of,
    measured_run,
    report_end,
    say,
)
from nose2_servercov.engine.command import CommandNotFound, check_runnable, run_command
from nose2_servercov.engine.stopsignals import (
    StopRequested,
    StopSignals,
    ignore_stop_signals,
    on_stop_signals,
)
from nose2_servercov.errors import ServercovError

if TYPE_CHECKING:
    from nose2_servercov.engine.run import MeasuredRun


def command_of(args: argparse.Namespace) -> list[str]:
    """Return the test command after ``--``; refuse an empty one."""
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise ServercovError("no command to run: servercov run [--rcfile FILE] -- COMMAND...")
    return command


def run(args: argparse.Namespace) -> int:
    """Run ``servercov run``; return its exit status."""
    command = command_of(args)
    check_runnable(command)  # before the config: a typo is named first, nothing started
    session = measured_run(config_of(args), verbose=args.verbose)
    stops = StopSignals()
    try:
        with on_stop_signals(stops):
            try:
                session.start()
                stops.raising = False
            except StopRequested as stop:
                session.stop(quiet=True)
                return 128 + stop.signum
            code = _test_command(command, session, stops)
            ignore_stop_signals()
            try:
                problem, status = report_end(session)
            except ServercovError as exc:
                say(f"error: {exc}")
                return code or ERROR
    finally:
        session.stop(quiet=True)  # whatever went wrong: no server left running
    return _status(code, problem, status)


def _test_command(command: list[str], session: MeasuredRun, stops: StopSignals) -> int:
    """Run the test command against the started server; return its exit status."""
    if stops.received:  # stopped between the server's start and the command's
        return 128 + stops.received[0]
    try:
        return run_command(command, env=session.test_env(), guard=session.guard, stops=stops,
                           grace=session.config.shutdown_timeout, say=say)
    except CommandNotFound as exc:  # the server ran: what it measured is still reported
        say(f"error: {exc}")
        return NOT_FOUND


def _status(code: int, problem: str | None, status: int) -> int:
    """Return run's exit status: the command's, else the report's; name the problem."""
    if problem:
        say(f"error: {problem}")
    if code:
        return code
    if status == LOST_DATA:
        return LOST_DATA
    return ERROR if problem else status
