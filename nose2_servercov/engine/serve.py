"""The foreground serve of ``servercov serve``, and the two commands that talk to it.

A serve publishes its state file (:mod:`~nose2_servercov.engine.servestate`)
once its server answers, waits while the server runs, and takes in its own
process the snapshots that ``servercov snapshot`` asks for (SIGUSR1 wakes
it; it has coverage imported and its processes at hand).  Its final report
holds the state file's lock, so that it never overlaps a snapshot, and the
state file goes when the serve ends.  ``servercov snapshot`` and ``stop``
find the serve through that file: this module and the ones it imports at
the top import no coverage, so those commands start fast.
"""

from __future__ import annotations

import contextlib
import io
import os
import select
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from nose2_servercov import procfs
from nose2_servercov.engine.config import ServerConfig
from nose2_servercov.engine.servestate import (
    ServeState,
    SnapshotAnswer,
    another_serve,
    answer_snapshot_requests,
    answer_stop_requests,
    ask_for_final_total,
    ask_for_snapshot,
    exclusive,
    is_serve,
    private_folder,
    read_state,
    running_serve,
    state_path,
    take_final_total,
)
from nose2_servercov.engine.stopsignals import StopRequested, StopSignals, drain, wakeup_pipe
from nose2_servercov.errors import ServeError, ServercovError, describe_error

if TYPE_CHECKING:
    from nose2_servercov.engine.run import LocalRun

# What `servercov snapshot` exits with after its one `servercov: error:` line.
SNAPSHOT_FAILED = 1
# How long `servercov snapshot` waits beyond the serve's own wait for its processes' dumps.
SNAPSHOT_MARGIN = 120
# `servercov stop` waits while the serve escalates through three stop steps, then reports.
STOP_STEPS = 3
STOP_MARGIN = 60


def claim_state(rcfile: Path, *, say: Callable[[str], None]) -> Path:
    """Return where this serve of ``rcfile`` will keep its state; refuse if another one runs.

    A state file that a gone serve left behind is removed (``say`` names it).
    From now on SIGUSR1 is a snapshot request: a ``servercov snapshot`` that
    finds the state sends it at once, and its default would kill the serve.
    """
    path = state_path(rcfile)
    private_folder(path.parent, make=False)  # before anything starts, not after
    previous = read_state(path)
    if previous is not None and previous.is_serve_for(rcfile):
        raise ServeError(f"a servercov serve is already running for {rcfile} "
                         f"(pid {previous.serve_pid}, {previous.url}); end it with: "
                         "servercov stop")
    if previous is not None and previous.is_running() and is_serve(previous.serve_pid):
        # The serve of another rcfile of this folder: its state is never removed.
        raise ServeError(another_serve(previous.serve_pid, rcfile, "stop") +
                         " (one serve per folder: stop it first)")
    if path.exists():
        say(f"replacing {path}: the serve that wrote it is gone")
        path.unlink()
    signal.signal(signal.SIGUSR1, lambda signum, frame: None)  # kept until exit
    return path


def publish_state(session: LocalRun, url: str, path: Path) -> None:
    """Write the state file of the serve whose server ``session`` has started at ``url``."""
    assert session.process is not None
    ServeState.of_this_process(server_pgid=session.process.pid, url=url,
                               rcfile=session.config.rcfile,
                               data_file=session.settings.data_file).write(path)


def serve_until_stopped(session: LocalRun, path: Path, stops: StopSignals, *,
                        say: Callable[[str], None]) -> None:
    """Wait while the server runs, taking the snapshots asked for (SIGUSR1 wakes us).

    A stop signal raises :class:`StopRequested` out of the wait, never out of
    a snapshot: while one is taken, signals are only recorded, and acted on
    after it.  A request that cannot be answered is named; it never ends the
    serve.
    """
    with wakeup_pipe() as wakeup:  # SIGCHLD too: the server's exit is seen at once
        while session.running():
            select.select([wakeup], [], [], 0.2)
            drain(wakeup)
            stops.raising = False
            try:
                answer_snapshot_requests(path, lambda: snapshot_answer(session, path))
            except OSError as exc:
                say(f"warning: a snapshot request could not be answered: {describe_error(exc)}")
            if stops.received:
                raise StopRequested(stops.received[0])
            stops.raising = True


def snapshot_answer(session: LocalRun, path: Path) -> SnapshotAnswer:
    """Take a snapshot in the serve; return what ``servercov snapshot`` prints and exits with."""
    from nose2_servercov.engine.data import snapshot

    out, err = io.StringIO(), io.StringIO()
    status = 0
    try:
        assert session.process is not None
        config = session.config
        with exclusive(path):  # one report at a time: the agent may be taking one too
            result = snapshot.take_snapshot(session.settings, session.measured_groups(),
                                            config.reports, timeout=config.shutdown_timeout,
                                            out=out, err=err)
        for name, place in result.outputs:
            if place != "terminal":
                err.write(f"servercov: {name} report: {place}\n")
    except (ServercovError, OSError, ValueError) as exc:
        err.write(f"servercov: error: {describe_error(exc)}\n")
        status = SNAPSHOT_FAILED
    return SnapshotAnswer(status, out.getvalue(), err.getvalue())


@contextlib.contextmanager
def final_report(path: Path) -> Iterator[None]:
    """Hold the state file's lock for the final report, then remove the state file.

    One report at a time: a snapshot may be writing right now.
    """
    try:
        with exclusive(path) if path.exists() else contextlib.nullcontext():
            yield
    finally:
        remove_state(path)


def remove_state(path: Path) -> None:
    """Remove the state file if this process wrote it, and its folder if empty."""
    ours = read_state(path)
    if ours is not None and ours.serve_pid == os.getpid():
        path.unlink()
    with contextlib.suppress(OSError):
        path.parent.rmdir()


def snapshot_of_running_serve(config: ServerConfig) -> SnapshotAnswer:
    """Have the serve running for ``config``'s rcfile take a snapshot; return its answer."""
    state = running_serve(config.rcfile, command="snapshot")
    return ask_for_snapshot(state, config.rcfile,
                            timeout=config.shutdown_timeout + SNAPSHOT_MARGIN)


def final_lines(total: float | None, places: list[str], problem: str | None) -> str:
    """Return the serve's last ``servercov:`` lines that ``servercov stop`` prints too."""
    lines = [] if total is None else [f"total coverage {total:.2f}%"]
    lines += places + ([f"error: {problem}"] if problem else [])
    return "".join(f"servercov: {line}\n" for line in lines)


def tell_stoppers(path: Path, status: int, lines: str, *, reported: bool) -> None:
    """Hand the final lines, and whether the reports were written, to every waiting stop."""
    answer_stop_requests(path, SnapshotAnswer(status, "", lines, reported))


def stop_running_serve(config: ServerConfig) -> tuple[int, SnapshotAnswer | None]:
    """Stop the serve running for ``config``'s rcfile; return its pid and final lines.

    The wait shows its progress on a terminal; a serve that overruns it, or
    ends without removing its state file (its report unfinished), is an error.
    The final lines are None from a serve that gave none.
    """
    state = running_serve(config.rcfile, command="stop")
    answer = ask_for_final_total(config.rcfile)
    os.kill(state.serve_pid, signal.SIGTERM)
    timeout = STOP_STEPS * config.shutdown_timeout + STOP_MARGIN
    started = time.monotonic()
    next_progress = started + 1.0
    while procfs.start_time(state.serve_pid) == state.serve_started:
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
    final = take_final_total(answer)
    if state_path(config.rcfile).exists():
        raise ServeError(f"the serve (pid {state.serve_pid}) ended without finishing its "
                         "reports: see its output")
    return state.serve_pid, final
