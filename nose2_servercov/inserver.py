"""The code that runs inside every server process (loaded by bootstrap/sitecustomize.py).

It imports only the standard library and coverage, stays a few dozen lines,
and never raises into the server: a failure is printed on the server's
stderr, where servercov shows it, and the server runs on unmeasured.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any


def _say(message: str) -> None:
    try:
        sys.stderr.write(f"servercov: pid {os.getpid()}: {message}\n")
    except Exception:
        pass


def _start_coverage() -> Any:
    """Start coverage from servercov's environment (a no-op if coverage's .pth did)."""
    try:
        import coverage
    except ImportError:
        _say(f"coverage is not installed for {sys.executable}: this process is not measured")
        return None
    coverage.process_startup()
    return coverage.Coverage.current()


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    """Turn SIGTERM into an orderly exit, so that atexit saves the coverage data.

    Saving from inside the handler could deadlock on the collector's lock while
    a request is traced; raising SystemExit unwinds to the normal exit instead.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise SystemExit(128 + signum)


def _save_on_sigterm() -> None:
    """Install the SIGTERM handler where the process has none of its own."""
    is_main = threading.current_thread() is threading.main_thread()
    if is_main and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)


def _trace_threads_made_in_c() -> None:
    """Trace threads that C code starts, such as uWSGI's request threads.

    Before Python 3.12 coverage traces only threads started by ``threading``.
    uWSGI's core threads call ``threading.current_thread()`` once, which makes
    a ``_DummyThread``: that is the first moment Python runs there, so start
    coverage's tracer in it then.
    """
    dummy = threading._DummyThread
    original_init = dummy.__init__

    def init_and_trace(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        tracer = threading.gettrace()
        if tracer is not None and sys.gettrace() is None:
            sys.settrace(tracer)

    dummy.__init__ = init_and_trace


def _keep_data_of_a_master_that_never_exits(cov: Any) -> None:
    """Save the uWSGI master's data when it forks a worker.

    The uWSGI master never runs Python's atexit, and when Python's fork hooks
    are on (py-call-osafterfork), coverage's fork patch restarts coverage in
    the workers: what the master ran before the fork (the app's import) would
    be in no file.  Saving the parent's data in the child keeps it.
    """
    def after_in_child() -> None:
        if "uwsgi" in sys.modules and cov._started is False:  # the fork patch stopped it
            try:
                cov.save()
            except Exception as exc:
                _say(f"cannot save the master's data: {exc!r}")

    os.register_at_fork(after_in_child=after_in_child)


def install() -> None:
    """Start measuring this process and make its orderly stops save the data."""
    cov = _start_coverage()
    if cov is None:
        return
    _save_on_sigterm()
    _trace_threads_made_in_c()
    _keep_data_of_a_master_that_never_exits(cov)
