"""The code that runs inside every server process, started by ``bootstrap/sitecustomize.py``.

:func:`install` starts coverage in the process, then adds an ordered list of
small hooks, each in the module of its job:

- ``registration``: the process registers in the run folder, marks its
  orderly exits and names the problems that make its data untrustworthy;
- ``signals``: SIGTERM becomes an orderly exit, so that coverage saves;
- ``dumps``: a thread writes the process's dump when the run asks (snapshots,
  the save before a stop signal) and on autosave, and answers;
- ``quirks``: what uWSGI, threads started in C and greenlets need;
- ``coverage_private``: every private coverage.py name the others read,
  checked against the running coverage (a feature it does not fit is refused
  in one line, never run on a guess).

It imports only the standard library, coverage, and servercov's two
standard-library modules :mod:`nose2_servercov.protocol` (the names shared
with the run) and :mod:`nose2_servercov.procfs`.  It never raises into the
server: a hook that fails is named on the server's stderr (``servercov: pid
N: ...``), where servercov shows it, and the server runs on with the others.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nose2_servercov.inserver import dumps, quirks, registration, signals

if TYPE_CHECKING:
    from coverage import Coverage


def start_coverage() -> Coverage | None:
    """Start coverage from servercov's environment (a no-op if coverage's .pth did)."""
    try:
        import coverage
    except ImportError:
        registration.report_problem(f"coverage is not installed for {sys.executable}: this "
                                    "process is not measured")
        return None
    coverage.process_startup()
    return coverage.Coverage.current()


def _run(hook: Callable[..., object], *args: Any, **kwargs: Any) -> None:
    """Run one hook; a failure is printed on the server's stderr, never raised into it."""
    try:
        hook(*args, **kwargs)
    except Exception as exc:
        registration.say(f"{hook.__name__} failed, the server runs on without it: {exc!r}")


def install() -> None:
    """Start measuring this process and make its orderly stops save the data.

    The order matters.  atexit runs the functions last registered first, so
    the hooks registered below all run before coverage's own save (registered
    when coverage started), the greenlet check first and the exit marker last.
    Fork hooks run in the child in the order registered: the child registers
    before the master's data is saved and before its answering thread starts.
    """
    try:
        cov = start_coverage()
    except Exception as exc:
        registration.say(f"coverage cannot start, this process is not measured: {exc!r}")
        return
    if cov is None:
        return
    in_uwsgi = quirks.in_uwsgi()
    # proc.<pid> before it serves anything, so that the run waits for it and
    # accounts for its data; each child it forks registers as it starts.
    _run(registration.register_now_and_after_fork)
    # exit.<pid> at atexit, os._exit and exec: the run tells a save from a kill.
    _run(registration.mark_orderly_exits)
    if in_uwsgi:
        # Workers forked without Python's fork hooks register from uWSGI's own hook.
        _run(quirks.register_uwsgi_workers)
        # uWSGI's SIGHUP and SIGINT must not end a worker halfway through its save.
        _run(quirks.finish_saving_before_uwsgi_stops)
    # SIGTERM, and a later reset of it to the default, become an orderly exit.
    _run(signals.save_on_sigterm)
    # Lines of greenlets coverage did not follow are wrong: refused at exit.
    _run(quirks.refuse_unannounced_greenlets_at_exit, cov)
    # Threads started in C (uWSGI's) are traced from their first Python call.
    _run(quirks.trace_threads_made_in_c)
    # The uWSGI master never exits: each worker saves its data as it is forked.
    _run(quirks.keep_data_of_a_master_that_never_exits, cov)
    # The thread that answers the run's save requests (snapshots, stops, autosave).
    _run(dumps.answer_save_requests, in_uwsgi=in_uwsgi)
