"""Turn SIGTERM into an orderly exit, so that coverage saves the data of a process stopped by it.

A process that dies of SIGTERM's default action runs no atexit, so coverage
never saves.  Where the process has no SIGTERM handler of its own, servercov
installs one that raises SystemExit, and wraps ``signal.signal`` so that a
server resetting SIGTERM to its default later still gets this one.  A child
of a process pool (multiprocessing's, billiard's) leaves every TERM to its
live parent for a while (see DEFER_TO_PARENT_SECONDS).
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
from typing import Any

# A TERM that reaches a child of a process pool (multiprocessing: hypercorn's and
# uvicorn's workers) while its parent lives is left to that parent for this long:
# the parent stops its children its own way (hypercorn through an event), and
# raising SystemExit in a child's event loop would cancel its shutdown code.
# Every TERM in that time is left to it, not only the first: hypercorn's master
# terminate()s the workers still shutting down as soon as one has exited, and a
# SystemExit raised then cancelled the slower worker's lifespan shutdown (seen in
# CI under load: LifespanFailure).  A worker first waits up to hypercorn's
# graceful_timeout (3 s), then runs its lifespan shutdown; the runner escalates
# to KILL only after shutdown_timeout (15 s by default).
DEFER_TO_PARENT_SECONDS = 10.0
_exiting = False  # set once atexit runs: the data is being saved
_deferring = False  # a TERM came while a pool parent lived: it is left to that parent
_deferral_over = False  # the parent did not end this process in time: exit on the next TERM

# The functions the wrappers below replace, for code of servercov that must set a
# handler as it is (quirks.py ignores uWSGI's stop signals with it).
original_signal = signal.signal
original_getsignal = signal.getsignal


def _mark_exiting() -> None:
    global _exiting
    _exiting = True


def _pool_parent() -> int | None:
    """Return the pid of the live pool parent that owns this process, if any.

    multiprocessing's (hypercorn's and uvicorn's workers) or billiard's
    (Celery's prefork children: Celery resets their TERM to the default, so a
    TERM to the group would end a child in the middle of its task, where the
    parent's warm shutdown lets the task finish and then ends the child).
    """
    process = sys.modules.get("multiprocessing.process")
    parent = process.parent_process() if process is not None else None
    if parent is not None and parent.pid == os.getppid():
        return int(parent.pid)
    if _in_billiard_child() and os.getppid() != 1 and _run_is_stopping():
        return os.getppid()
    return None


# A TERM this soon after the save the run asks for before its stop signal is the stop.
STOP_WINDOW_SECONDS = 5.0


def _run_is_stopping() -> bool:
    """Return whether the run has just asked this process to save: its stop signal follows.

    billiard also sends TERM to one child of its own accord (a hard time limit,
    a revoke with terminate=True): that one must end the child at once, as
    billiard wants.  Only the run's stop, which reaches the whole group, is left
    to the parent.
    """
    dumps = sys.modules.get("nose2_servercov.inserver.dumps")
    return bool(dumps is not None and dumps.answered_within(STOP_WINDOW_SECONDS))


def _in_billiard_child() -> bool:
    billiard = sys.modules.get("billiard.process")
    return billiard is not None and billiard.current_process().name != "MainProcess"


def _left_to_parent() -> bool:
    """Return whether this TERM is left to a live pool parent; the first starts the watch."""
    global _deferring
    if _deferring and not _deferral_over:
        return True  # the parent is ending this process its own way; the waiting thread watches
    parent = None if _deferring else _pool_parent()
    if parent is None:
        return False
    _deferring = True
    threading.Thread(target=_wait_for_parent_then_exit, args=(parent,),
                     name="servercov-term", daemon=True).start()
    return True


class _AfterParent:
    """A billiard pool child's own TERM handler, run once the parent has had its time.

    billiard ends a child at once on TERM (``sys.exit``): a TERM to the whole
    group, as servercov stops a section, would cut the child's task, where
    Celery's warm shutdown in the parent lets it finish and then ends the child.
    Any other TERM (see _run_is_stopping) runs billiard's handler at once.
    """

    def __init__(self, handler: Any) -> None:
        self.handler = handler

    def __call__(self, signum: int, frame: Any) -> Any:
        if not _left_to_parent():
            return self.handler(signum, frame)
        return None


def _wait_for_parent_then_exit(parent: int) -> None:
    global _deferral_over
    deadline = time.monotonic() + DEFER_TO_PARENT_SECONDS
    while os.getppid() == parent and time.monotonic() < deadline:
        time.sleep(0.05)
    _deferral_over = True
    signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGTERM)


def exit_on_sigterm(signum: int, frame: Any) -> None:
    """Turn SIGTERM into an orderly exit, so that atexit saves the coverage data.

    Saving from inside the handler could deadlock on the collector's lock while
    a request is traced; raising SystemExit unwinds to the normal exit instead.
    The handler stays: a server that swallows the SystemExit (wsgiref's bare
    ``except:``) gets it again on the next TERM, while a TERM that comes once
    the data is being saved (atexit runs) ends the process as TERM does.
    A pool child whose parent lives leaves every TERM to the parent for
    DEFER_TO_PARENT_SECONDS (see there), and exits the orderly way if the
    parent has not ended it by then.
    """
    if _exiting:
        original_signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    if _left_to_parent():
        return
    raise SystemExit(128 + signum)


def _signal(signalnum: Any, handler: Any) -> Any:
    """``signal.signal``, where the default action of SIGTERM saves the data first.

    Servers reset SIGTERM to SIG_DFL (gunicorn's uvicorn worker does after the
    fork) and re-raise it once their own graceful shutdown is done (uvicorn):
    with the true default the process would then die without saving.
    """
    main = threading.current_thread() is threading.main_thread()
    if signalnum == signal.SIGTERM and handler == signal.SIG_DFL and main:
        handler = exit_on_sigterm
    elif signalnum == signal.SIGTERM and callable(handler) and main and _in_billiard_child():
        handler = _AfterParent(handler)
    return _as_set(original_signal(signalnum, handler))


def _as_set(handler: Any) -> Any:
    """Return the handler as the process set it, not servercov's wrapping of it."""
    if handler is exit_on_sigterm:
        return signal.SIG_DFL
    return handler.handler if isinstance(handler, _AfterParent) else handler


def _getsignal(signalnum: Any) -> Any:
    return _as_set(original_getsignal(signalnum))


def save_on_sigterm() -> None:
    """Install the SIGTERM handler where the process has none of its own; keep it the default."""
    is_main = threading.current_thread() is threading.main_thread()
    if is_main and original_getsignal(signal.SIGTERM) == signal.SIG_DFL:
        original_signal(signal.SIGTERM, exit_on_sigterm)
        # Registered after coverage's own atexit, so it runs before coverage saves.
        atexit.register(_mark_exiting)
        signal.signal = _signal
        signal.getsignal = _getsignal
