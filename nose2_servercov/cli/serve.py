"""``servercov serve``: the server measured in the foreground until Ctrl-C, SIGTERM or ``stop``.

The serve itself (its state file, the snapshots it takes for ``servercov
snapshot``, its final report under the state file's lock) is
:mod:`nose2_servercov.engine.serve`.  With ``--control``, the agent of
:mod:`nose2_servercov.remote.agent` listens in this process for ``servercov
collect`` and is told how the serve ended, so that a remote ``/stop`` gets
the final data.
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from nose2_servercov import __version__
from nose2_servercov.cli.entry import (
    ERROR,
    LOST_DATA,
    config_of,
    report_end,
    say,
)
from nose2_servercov.engine.config import ServerConfig
from nose2_servercov.engine.serve import (
    claim_state,
    final_lines,
    final_report,
    publish_state,
    serve_until_stopped,
    tell_stoppers,
)
from nose2_servercov.engine.stopsignals import (
    StopRequested,
    StopSignals,
    ignore_stop_signals,
    on_stop_signals,
)
from nose2_servercov.errors import ServeError, ServercovError, describe_error

if TYPE_CHECKING:
    from nose2_servercov.engine.run import LocalRun
    from nose2_servercov.remote.agent import ControlAgent

CONTROL_FLAGS = ("control_token_file", "control_cert", "control_key", "control_insecure")


def serve(args: argparse.Namespace) -> int:
    """Run ``servercov serve``; with ``--control``, its agent listens and /stop gets the data."""
    config = config_of(args)
    if not config.command:
        raise ServeError(f"{config.rcfile}: [servercov] command: serve runs the server, so it "
                         "needs how to start it (remotes are collected with servercov collect)")
    control = control_agent(args)  # refused before anything starts
    if control is None:
        return _serve(config, None, verbose=args.verbose)
    try:
        status = _serve(config, control, verbose=args.verbose)
    except ServercovError as exc:
        control.close(error=str(exc))
        raise
    control.close(status=status)
    return status


def _report_end(session: LocalRun, path: Path) -> tuple[str | None, int]:
    """Stop and report; a report that failed is told to every waiting ``servercov stop``.

    Else ``stop`` would find the serve gone and its state removed, and claim
    the final reports were written.
    """
    try:
        return report_end(session)
    except ServercovError as exc:
        tell_stoppers(path, ERROR, final_lines(None, [], describe_error(exc)), reported=False)
        raise


def control_agent(args: argparse.Namespace) -> ControlAgent | None:
    """Return the agent that ``--control`` and its options ask for, None without it."""
    from nose2_servercov.remote import agent  # only a serve with --control needs http.server, ssl

    if not args.control:
        for flag in CONTROL_FLAGS:
            if getattr(args, flag):
                raise ServeError(f"--{flag.replace('_', '-')} needs --control HOST:PORT")
        return None
    return agent.ControlAgent(agent.ControlOptions(
        args.control, token_file=args.control_token_file, cert=args.control_cert,
        key=args.control_key, insecure=args.control_insecure), version=__version__)


def _serve(config: ServerConfig, control: ControlAgent | None, *, verbose: bool) -> int:
    """Serve until stopped, then report; return the serve's exit status."""
    path = claim_state(config.rcfile, say=say)
    from nose2_servercov.engine.run import LocalRun  # serve always runs its server here

    session = LocalRun(config, verbose=verbose, snapshots=True)
    stops = StopSignals()
    with on_stop_signals(stops):
        try:
            url = session.start()
        except StopRequested as stop:
            session.stop(quiet=True)
            return 128 + stop.signum
        try:
            publish_state(session, url, path)
            if control is not None:
                control.start(session, path)
            say(f"serving {url} until Ctrl-C or `servercov stop`; `servercov snapshot` "
                "writes the reports of what it has run so far")
            serve_until_stopped(session, path, stops, say=say)
            say("the server command ended by itself")
        except StopRequested as stop:
            say(f"{signal.Signals(stop.signum).name}: stopping the server")
        finally:
            ignore_stop_signals()
            with final_report(path):
                problem, status = _report_end(session, path)
    if problem:
        say(f"error: {problem}")
    status = LOST_DATA if status == LOST_DATA else ERROR if problem else status
    result = session.result
    tell_stoppers(path, status, final_lines(result.total if result else None,
                                            result.place_lines() if result else [], problem),
                  reported=result is not None)
    return status
