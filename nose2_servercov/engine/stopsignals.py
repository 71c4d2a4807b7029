"""SIGINT, SIGTERM and SIGCHLD in the foreground commands ``servercov run`` and ``serve``.

A stop signal raises :class:`StopRequested` at most once, and only where
the command can unwind safely (the server starting, ``serve`` waiting);
elsewhere it is recorded and acted on by the code that owns the moment
(see :mod:`nose2_servercov.engine.interrupts`).  The waits sleep on a
wakeup pipe that every signal, the child's SIGCHLD included, makes
readable: a child's end or a stop is seen at once, never after a poll.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

from nose2_servercov.engine.interrupts import OneShotInterrupt

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequested(Exception):
    """SIGINT or SIGTERM arrived: end in the orderly way."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class StopSignals(OneShotInterrupt):
    """The handler of SIGINT/SIGTERM under ``run`` and ``serve``: raise at most once.

    It raises only while the server starts (to cut the wait for ready short)
    and, under ``serve``, while it serves; once ``run``'s command runs it never
    raises, so no signal can land as an exception inside the wait for the
    command and lose its exit status (issue 8).
    """

    def interrupt(self, signum: int) -> None:
        """Unwind what runs now with :class:`StopRequested`."""
        raise StopRequested(signum)


@contextlib.contextmanager
def on_stop_signals(handler: OneShotInterrupt) -> Iterator[None]:
    """Route SIGINT and SIGTERM to ``handler`` for the block; restore them after.

    Once a stop signal came, they stay ignored instead: the run is ending, and a
    second Ctrl-C between the report and the exit must neither kill servercov
    (losing the command's status) nor print a traceback.
    """
    saved = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        if handler.received:
            ignore_stop_signals()
        else:
            for sig, previous in saved.items():
                signal.signal(sig, previous)


def ignore_stop_signals() -> None:
    """Let no second Ctrl-C cut the orderly stop short: it is bounded anyway."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


@contextlib.contextmanager
def wakeup_pipe() -> Iterator[int]:
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


def drain(wakeup: int) -> None:
    """Empty the wakeup pipe after a wake, so the next wait sleeps until the next signal."""
    with contextlib.suppress(OSError):  # BlockingIOError: it was empty already
        os.read(wakeup, 512)
