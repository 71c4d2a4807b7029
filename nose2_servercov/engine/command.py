"""The test command of ``servercov run``: a child that gets the stop signals and keeps its status.

The command runs with the server's URL in its environment, guarded by the
keeper (ended with the server if servercov dies).  A SIGINT or SIGTERM that
servercov receives is passed on to it, and it is killed if it still runs
``grace`` seconds later.  Its exit status is never lost: it is reaped by
one ``os.waitpid`` (or, in one race, by ``Popen``'s own poll), never by an
interruptible ``Popen.wait``.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence

from nose2_servercov.engine.stopsignals import StopSignals, drain, wakeup_pipe
from nose2_servercov.errors import ServercovError


class CommandNotFound(ServercovError):
    """The test command cannot be started (a shell's status 127)."""


def check_runnable(command: Sequence[str]) -> None:
    """Refuse, before anything starts, a command that names no executable program."""
    if shutil.which(command[0]) is None:
        raise CommandNotFound(f"cannot run {command[0]!r}: no such command (or not executable)")


def run_command(command: Sequence[str], *, env: Mapping[str, str], guard: Callable[[int], None],
                stops: StopSignals, grace: float, say: Callable[[str], None]) -> int:
    """Run ``command`` with ``env`` added to ours; return its exit status, as a shell gives it.

    ``guard`` is handed the command's pid as soon as it runs (the keeper ends
    it with the server); ``say`` prints the note of a kill after ``grace``.
    """
    with wakeup_pipe() as wakeup:
        try:
            child = subprocess.Popen(command, env={**os.environ, **env})
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise CommandNotFound(f"cannot run {command[0]!r}: {reason}") from None
        guard(child.pid)
        return exit_status(wait_for_command(child, stops, wakeup, grace, say=say))


def exit_status(code: int) -> int:
    """Return a shell's status for a ``Popen`` return code: 128+N for a death by signal N."""
    return 128 - code if code < 0 else code


def wait_for_command(child: subprocess.Popen[bytes], stops: StopSignals, wakeup: int,
                     grace: float, *, say: Callable[[str], None]) -> int:
    """Return the command's exit code; pass SIGINT/SIGTERM on to it, then end it after ``grace``.

    The command is reaped by one ``os.waitpid``, which returns its status or
    nothing: unlike an interrupted ``Popen.wait`` it cannot lose it.  Between
    looks, ``select`` sleeps on the wakeup pipe, which every signal (the
    command's SIGCHLD too) makes readable.
    """
    deadline: float | None = None
    forwarded = 0
    while True:
        code = _reaped(child)
        if code is not None:
            return code
        while forwarded < len(stops.received):
            _forward(child, stops.received[forwarded])
            forwarded += 1
            deadline = deadline or time.monotonic() + grace
        timeout = None if deadline is None else deadline - time.monotonic()
        if timeout is not None and timeout <= 0:
            say(f"the command was still running {grace:g} s after the signal: killed")
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            deadline = timeout = None
        select.select([wakeup], [], [], timeout)
        drain(wakeup)


def _reaped(child: subprocess.Popen[bytes]) -> int | None:
    """Reap the command if it ended; return its return code, None while it runs."""
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
    return None


def _forward(child: subprocess.Popen[bytes], signum: int) -> None:
    """Pass a stop signal servercov received on to the command, unless it has it already."""
    # A Ctrl-C on the terminal reached the command already (same process group).
    if signum != signal.SIGINT or not _terminal_signals_reach(child):
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)


def _terminal_signals_reach(child: subprocess.Popen[bytes]) -> bool:
    """Return whether the terminal's signals go to the command's process group."""
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgid(child.pid)
    except OSError:
        return False
