"""Fit the hooks to what particular servers do: uWSGI, threads started in C, greenlets.

uWSGI forks its workers from a master that never runs atexit, may fork them
without Python's fork hooks, and stops them with SIGHUP and SIGINT; its
request threads are started in C.  gevent's and eventlet's greenlets confuse
a coverage that was not told of them.  Each function below is one of these
fixes; :func:`nose2_servercov.inserver.install` calls them.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from nose2_servercov import procfs, protocol
from nose2_servercov.inserver import coverage_private, dumps, registration, signals

if TYPE_CHECKING:
    from coverage import Coverage


def in_uwsgi() -> bool:
    """Return whether this process is uWSGI's (its master, before the workers are forked)."""
    return os.path.basename(procfs.executable("self") or sys.executable).startswith("uwsgi")


def finish_saving_before_a_uwsgi_stop() -> None:
    """Ignore uWSGI's stop signals while a worker on its way out saves its data.

    A worker recycled (max-requests, reload-on-rss) saves at exit; uWSGI's
    stops (SIGHUP from ``q`` on the master FIFO, SIGINT from a master stopped
    by INT) run handlers that call exit() again and end the process mid-save,
    leaving an empty data file.  The worker is leaving anyway, which is all
    that they ask.  Ignored, not blocked: a blocked signal goes to another thread.
    Registered again in each worker after the fork, so it runs before the
    app's own atexit functions too.
    """
    try:
        for signum in (signal.SIGHUP, signal.SIGINT):
            signals.original_signal(signum, signal.SIG_IGN)
    except (OSError, ValueError):  # ValueError: exit() called from another thread
        pass


def finish_saving_before_uwsgi_stops() -> None:
    """Have :func:`finish_saving_before_a_uwsgi_stop` run at exit, before coverage saves."""
    atexit.register(finish_saving_before_a_uwsgi_stop)


def _after_uwsgi_fork() -> None:
    """Set a uWSGI worker up as its own measured process (registration, stop signals, dumps)."""
    if not registration.is_registered():
        registration.register()
    atexit.unregister(finish_saving_before_a_uwsgi_stop)
    atexit.register(finish_saving_before_a_uwsgi_stop)
    dumps.start_answering()


def register_uwsgi_workers() -> None:
    """Register uWSGI workers forked without Python's fork hooks (no py-call-osafterfork).

    The ``uwsgi`` module exists only once uWSGI has set Python up, after this
    code ran; its ``post_fork_hook`` runs in each worker with or without the
    fork hooks.  So wait for the first import that finds it, then chain onto it.
    """
    class UwsgiWatch:
        busy = False

        @classmethod
        def find_spec(cls, name: str, path: Any = None, target: Any = None) -> None:
            uwsgi: Any = sys.modules.get("uwsgi")
            if uwsgi is None or cls.busy:
                return None
            cls.busy = True
            try:
                sys.meta_path.remove(cls)
                previous = getattr(uwsgi, "post_fork_hook", None)

                def post_fork_hook() -> None:
                    _after_uwsgi_fork()
                    if previous is not None:
                        previous()

                uwsgi.post_fork_hook = post_fork_hook
            except Exception as exc:
                registration.say(f"cannot register uWSGI workers: {exc!r}")
            return None

    sys.meta_path.insert(0, UwsgiWatch)


def keep_data_of_a_master_that_never_exits(cov: Coverage) -> None:
    """Save the uWSGI master's data when it forks a worker.

    The uWSGI master never runs Python's atexit, and when Python's fork hooks
    are on (py-call-uwsgi-fork-hooks, or py-call-osafterfork before 3.13),
    coverage's fork patch restarts coverage in the workers: what the master
    ran before the fork (the app's import) would be in no file.  Saving the
    parent's data in the child keeps it.
    """
    def after_in_child() -> None:
        if "uwsgi" not in sys.modules:
            return
        refusal = coverage_private.refusal(cov, coverage_private.MASTER_DATA)
        if refusal:
            registration.report_problem(refusal)
        elif not coverage_private.is_started(cov):  # the fork patch stopped it
            try:
                cov.save()
            except Exception as exc:
                registration.say(f"cannot save the master's data: {exc!r}")

    os.register_at_fork(after_in_child=after_in_child)


def trace_threads_made_in_c() -> None:
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

    dummy.__init__ = init_and_trace  # type: ignore[method-assign]


def _unannounced_greenlets(cov: Coverage) -> str | None:
    """Return gevent or eventlet if it monkey-patched this process but coverage was not told."""
    concurrency = set(cov.config.concurrency or ())
    monkey: Any = sys.modules.get("gevent.monkey")
    if monkey is not None and "gevent" not in concurrency and monkey.is_module_patched("socket"):
        return "gevent"
    patcher: Any = sys.modules.get("eventlet.patcher")
    if (patcher is not None and "eventlet" not in concurrency
            and patcher.is_monkey_patched("socket")):
        return "eventlet"
    return None


def refuse_unannounced_greenlets(cov: Coverage) -> None:
    """Refuse this process's data if it ran greenlets that coverage did not follow.

    Such data holds lines of other frames recorded against the wrong file at
    greenlet switches (line numbers past the end of a file): it must not reach
    a report silently, and coverage cannot be told once it has started.
    """
    try:
        library = _unannounced_greenlets(cov)
    except Exception:
        return
    if library:
        rcfile = os.environ.get(protocol.COVERAGE_START_VARIABLE) or "the rcfile"
        registration.report_problem(
            f"this process runs {library} greenlets that coverage does not follow, so its "
            f"lines cannot be trusted: add 'concurrency = {library}, thread' to [run] in "
            f"{rcfile}")


def refuse_unannounced_greenlets_at_exit(cov: Coverage) -> None:
    """Check for greenlets coverage did not follow at exit, once the app has imported them."""
    atexit.register(refuse_unannounced_greenlets, cov)
