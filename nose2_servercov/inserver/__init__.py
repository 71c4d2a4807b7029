"""The code that runs inside every server process (loaded by bootstrap/sitecustomize.py).

It imports only the standard library and coverage, stays a few dozen lines,
and never raises into the server: a failure is printed on the server's
stderr, where servercov shows it, and the server runs on unmeasured.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import sys
import threading
import time
from typing import Any


def _say(message: str) -> None:
    try:
        sys.stderr.write(f"servercov: pid {os.getpid()}: {message}\n")
    except Exception:
        pass


def _report_problem(message: str) -> None:
    """Tell the session of a problem that makes this process's data untrustworthy."""
    _say(message)
    run_dir = os.environ.get("SERVERCOV_RUN_DIR")
    if run_dir:
        try:
            with open(os.path.join(run_dir, f"problem.{os.getpid()}"), "a") as f:
                f.write(message + "\n")
        except OSError:
            pass


def _start_coverage() -> Any:
    """Start coverage from servercov's environment (a no-op if coverage's .pth did)."""
    try:
        import coverage
    except ImportError:
        _report_problem(f"coverage is not installed for {sys.executable}: this process "
                        "is not measured")
        return None
    coverage.process_startup()
    return coverage.Coverage.current()


# A TERM that reaches a child of a process pool (multiprocessing: hypercorn's and
# uvicorn's workers) while its parent lives is left to that parent for this long:
# the parent stops its children its own way (hypercorn through an event), and
# raising SystemExit in a child's event loop would cancel its shutdown code.
DEFER_TO_PARENT_SECONDS = 5.0
_exiting = False  # set once atexit runs: the data is being saved
_deferred = False


def _mark_exiting() -> None:
    global _exiting
    _exiting = True


def _pool_parent() -> int | None:
    """Return the pid of the live multiprocessing parent that owns this process, if any."""
    process = sys.modules.get("multiprocessing.process")
    parent = process.parent_process() if process is not None else None
    if parent is None or parent.pid != os.getppid():
        return None
    return int(parent.pid)


def _wait_for_parent_then_exit(parent: int) -> None:
    deadline = time.monotonic() + DEFER_TO_PARENT_SECONDS
    while os.getppid() == parent and time.monotonic() < deadline:
        time.sleep(0.05)
    signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGTERM)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    """Turn SIGTERM into an orderly exit, so that atexit saves the coverage data.

    Saving from inside the handler could deadlock on the collector's lock while
    a request is traced; raising SystemExit unwinds to the normal exit instead.
    The handler stays: a server that swallows the SystemExit (wsgiref's bare
    ``except:``) gets it again on the next TERM, while a TERM that comes once
    the data is being saved (atexit runs) ends the process as TERM does.
    A pool child whose parent lives leaves the first TERM to the parent (see
    DEFER_TO_PARENT_SECONDS), and exits the orderly way if the parent has not
    stopped it by then.
    """
    global _deferred
    if _exiting:
        _original_signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    parent = None if _deferred else _pool_parent()
    if parent is not None:
        _deferred = True
        threading.Thread(target=_wait_for_parent_then_exit, args=(parent,),
                         name="servercov-term", daemon=True).start()
        return
    raise SystemExit(128 + signum)


_original_signal = signal.signal
_original_getsignal = signal.getsignal


def _signal(signalnum: Any, handler: Any) -> Any:
    """``signal.signal``, where the default action of SIGTERM saves the data first.

    Servers reset SIGTERM to SIG_DFL (gunicorn's uvicorn worker does after the
    fork) and re-raise it once their own graceful shutdown is done (uvicorn):
    with the true default the process would then die without saving.
    """
    main = threading.current_thread() is threading.main_thread()
    if signalnum == signal.SIGTERM and handler == signal.SIG_DFL and main:
        handler = _exit_on_sigterm
    previous = _original_signal(signalnum, handler)
    return signal.SIG_DFL if previous is _exit_on_sigterm else previous


def _getsignal(signalnum: Any) -> Any:
    current = _original_getsignal(signalnum)
    return signal.SIG_DFL if current is _exit_on_sigterm else current


def _save_on_sigterm() -> None:
    """Install the SIGTERM handler where the process has none of its own; keep it the default."""
    is_main = threading.current_thread() is threading.main_thread()
    if is_main and _original_getsignal(signal.SIGTERM) == signal.SIG_DFL:
        _original_signal(signal.SIGTERM, _exit_on_sigterm)
        # Registered after coverage's own atexit, so it runs before coverage saves.
        atexit.register(_mark_exiting)
        signal.signal = _signal
        signal.getsignal = _getsignal


def _unannounced_greenlets(cov: Any) -> str | None:
    """Return gevent or eventlet if it monkey-patched this process but coverage was not told."""
    concurrency = set(cov.config.concurrency or ())
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and "gevent" not in concurrency and monkey.is_module_patched("socket"):
        return "gevent"
    patcher = sys.modules.get("eventlet.patcher")
    if (patcher is not None and "eventlet" not in concurrency
            and patcher.is_monkey_patched("socket")):
        return "eventlet"
    return None


def _refuse_unannounced_greenlets(cov: Any) -> None:
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
        rcfile = os.environ.get("COVERAGE_PROCESS_START") or "the rcfile"
        _report_problem(f"this process runs {library} greenlets that coverage does not follow, "
                        f"so its lines cannot be trusted: add 'concurrency = {library}, thread' "
                        f"to [run] in {rcfile}")


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

    dummy.__init__ = init_and_trace  # type: ignore[method-assign]


def _keep_data_of_a_master_that_never_exits(cov: Any) -> None:
    """Save the uWSGI master's data when it forks a worker.

    The uWSGI master never runs Python's atexit, and when Python's fork hooks
    are on (py-call-uwsgi-fork-hooks, or py-call-osafterfork before 3.13),
    coverage's fork patch restarts coverage in the workers: what the master
    ran before the fork (the app's import) would be in no file.  Saving the
    parent's data in the child keeps it.
    """
    def after_in_child() -> None:
        if "uwsgi" in sys.modules and cov._started is False:  # the fork patch stopped it
            try:
                cov.save()
            except Exception as exc:
                _say(f"cannot save the master's data: {exc!r}")

    os.register_at_fork(after_in_child=after_in_child)


# Snapshots and autosave.  servercov asks for a snapshot by writing a new
# generation number into <control>/request, then writing a byte into each
# process's FIFO <control>/wake.<pid> (no signal: gunicorn and uWSGI own
# USR1/USR2, and saving inside a handler can deadlock on coverage's lock).  A
# daemon thread in every process sleeps in select() on its FIFO, so it costs
# the busy server nothing: a thread that woke every 25 ms to look at the file
# took 4 % of gunicorn's requests/s (each wake makes the serving thread hand
# over the GIL).  It still looks every WAKE_CHECK_SECONDS, or every
# POLL_SECONDS where no FIFO could be made.  It writes the process's dump and
# answers in <control>/ack.<pid>.  The names are shared with
# nose2_servercov.engine.data and .snapshot, which this file cannot import.
POLL_SECONDS = 0.025
WAKE_CHECK_SECONDS = 1.0
DUMP_INFIX = ".servercov-dump.pid"


def _open_wake_fifo(control: str) -> int | None:
    """Make ``<control>/wake.<pid>`` and return it open for reading; None if it cannot be."""
    path = os.path.join(control, f"wake.{os.getpid()}")
    try:
        if os.path.lexists(path):
            os.unlink(path)  # left by an ended process whose pid this one has now
        os.mkfifo(path, 0o600)
        # Read-write: opening does not wait for a writer, and reads never see an end.
        return os.open(path, os.O_RDWR | os.O_NONBLOCK)
    except (OSError, AttributeError):  # AttributeError: no mkfifo on this system
        return None


def _wait_for_wake(wake: int | None, seconds: float) -> None:
    """Sleep until a snapshot writes to ``wake`` or ``seconds`` pass."""
    if wake is None:
        time.sleep(seconds)
        return
    if select.select([wake], [], [], seconds)[0]:
        try:
            os.read(wake, 4096)
        except OSError:
            pass


def _replace_atomically(path: str, text: str) -> None:
    with open(f"{path}.tmp", "w") as f:
        f.write(text)
    os.replace(f"{path}.tmp", path)


def _write_dump(cov: Any, control: str) -> bool:
    """Write all this process has executed to ``<data_file>.servercov-dump.pid<pid>``.

    The collector's in-memory data is copied, never flushed: ``save()`` and
    ``get_data()`` move it into the data file and clear it while requests are
    traced.  The dump is written under another name, then renamed into place,
    so a reader (or a SIGKILL) never meets half a file.  Return whether there
    was anything to write.
    """
    from coverage import CoverageData

    collector, saved = cov._collector, cov._data
    if collector is None:
        return False
    context = getattr(saved, "_current_context", None)
    # Copy before reading what was flushed: data flushed meanwhile is in the copy.
    # dict.copy() and set.copy() are atomic under the GIL, while tracers add to them.
    live = {name: found.copy() for name, found in collector.data.copy().items() if found}
    flushed = saved.data_filename() if saved is not None else None
    if not live and not (flushed and os.path.exists(flushed)):
        return False
    temporary = os.path.join(control, f"dump.{os.getpid()}.tmp")
    dump = CoverageData(temporary)
    if flushed and os.path.exists(flushed):
        with saved._lock:  # a flush of this process writes that file under this lock
            earlier = CoverageData(flushed, read_only=True)
            earlier.read()
            dump.update(earlier)
            earlier.close(force=True)
    dump.set_context(context)
    _copy_into(collector, live, dump)
    dump.close(force=True)
    os.replace(temporary, f"{cov.config.data_file}{DUMP_INFIX}{os.getpid()}")
    return True


class UnknownCoverage(AttributeError):
    """coverage's collector is not built the way ``_copy_into`` knows."""


class _CollectorCopy:
    """What ``Collector.flush_data`` reads, over a copy of the data, writing into ``dump``.

    coverage's own flush unpacks the C tracer's packed arcs (a layout that
    changed in 7.13.2: 20 bits a line before, 28 after) and maps file names;
    running it on this stand-in reuses that code on a copy, so the live
    collector is neither cleared nor changed.  Only pure lookups are taken
    from the real collector; anything else the flush asks for is unknown.
    """

    def __init__(self, collector: Any, live: dict[str, Any], dump: Any) -> None:
        self.data = live
        self.branch = collector.branch
        self.core = collector.core
        self.covdata = dump
        self.tracers: list[Any] = []
        self.file_tracers = {name: tracer for name, tracer
                             in collector.file_tracers.copy().items() if name in live}
        self.disabled_plugins = set(collector.disabled_plugins)
        self.mapped_file_dict = collector.mapped_file_dict
        self.cached_mapped_file = collector.cached_mapped_file

    def _activity(self) -> bool:
        return True

    def _clear_data(self) -> None:
        pass  # the copy is thrown away; the live data stays

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise UnknownCoverage(name)


def _copy_into(collector: Any, live: dict[str, Any], dump: Any) -> None:
    """Add ``live`` (a copy of the collector's data) to ``dump``, as coverage's flush would."""
    import coverage

    flush = getattr(type(collector), "flush_data", None)
    try:
        if flush is None:
            raise UnknownCoverage("flush_data")
        flush(_CollectorCopy(collector, live, dump))
    except UnknownCoverage as exc:
        raise UnknownCoverage(
            f"coverage {coverage.__version__} flushes its collector in a way servercov does "
            f"not know (it needs Collector.{exc.args[0]}): snapshots and autosave of this "
            "process are off, their data would be wrong") from None


def _measured_size(cov: Any) -> tuple[int, int]:
    """Return a cheap fingerprint that changes when the process executes new lines."""
    saved = cov._data.data_filename() if cov._data is not None else ""
    size = os.stat(saved).st_mtime_ns if saved and os.path.exists(saved) else 0
    return sum(len(found) for found in cov._collector.data.copy().values()), size


def _answer_snapshots(control: str, autosave: float, wake: int | None) -> None:
    """Dump on each new snapshot generation, and every ``autosave`` seconds if changed."""
    import coverage

    request, ack = os.path.join(control, "request"), os.path.join(control, f"ack.{os.getpid()}")
    answered, seen, dumped, failed = "0", None, None, False
    next_save = time.monotonic() + autosave
    check = POLL_SECONDS if wake is None else WAKE_CHECK_SECONDS
    while True:
        pause = min(check, max(next_save - time.monotonic(), 0.0)) if autosave else check
        _wait_for_wake(wake, pause)
        try:
            cov = coverage.Coverage.current()
            if cov is None:
                continue
            try:
                stat = os.stat(request)
                signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            except FileNotFoundError:
                signature = None
            if signature is not None and signature != seen:
                seen = signature
                with open(request) as f:
                    generation = f.read().strip()
                if generation.isascii() and generation.isdigit() and generation != answered:
                    dumped = _measured_size(cov)
                    _write_dump(cov, control)
                    _replace_atomically(ack, generation)
                    answered = generation
            if autosave and time.monotonic() >= next_save:
                next_save = time.monotonic() + autosave
                if _measured_size(cov) != dumped:
                    dumped = _measured_size(cov)
                    _write_dump(cov, control)
        except UnknownCoverage as exc:  # never a wrong line number: refuse, in one line
            _report_problem(str(exc))
            return
        except Exception as exc:  # never take the server down; try again next time
            if not failed:
                _say(f"cannot write the coverage dump (will retry): {exc!r}")
            failed = True
            time.sleep(1.0)


_answering_pid: list[int] = []  # the pid whose polling thread runs (once per process)


def _start_answering_snapshots() -> None:
    """Register this process for snapshots and start its polling thread (again after fork)."""
    control = os.environ.get("SERVERCOV_CONTROL")
    if not control or _answering_pid == [os.getpid()]:
        return
    _answering_pid[:] = [os.getpid()]
    try:
        autosave = float(os.environ.get("SERVERCOV_AUTOSAVE") or 0)
        wake = _open_wake_fifo(control)  # before the registration, which snapshots look for
        # Registered before it serves anything, so a snapshot waits for this process.
        _replace_atomically(os.path.join(control, f"ack.{os.getpid()}"), "0")
        threading.Thread(target=_answer_snapshots, args=(control, autosave, wake),
                         name="servercov-snapshots", daemon=True).start()
    except Exception as exc:
        _say(f"snapshots and autosave are off in this process: {exc!r}")


# Accounting.  Every measured process registers in SERVERCOV_RUN_DIR before it
# serves anything (proc.<pid>: pid, ppid, command line, start time), and marks
# the start of its orderly exit (exit.<pid>: how much it had measured), so that
# the session can tell a process that saved from one that was killed.  The
# names are shared with nose2_servercov.engine.accounting, which this file cannot import.

def _command_line() -> list[str]:
    try:
        with open("/proc/self/cmdline", "rb") as f:
            return [word.decode("utf-8", "replace") for word in f.read().split(b"\0")[:-1]]
    except OSError:
        return list(getattr(sys, "orig_argv", sys.argv))


def _executable() -> str:
    try:
        return os.readlink("/proc/self/exe")
    except OSError:
        return sys.executable


def _start_time() -> int | None:
    """Return this process's start time in clock ticks since boot, from /proc."""
    try:
        with open("/proc/self/stat", "rb") as f:
            stat = f.read()
        return int(stat[stat.rfind(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _register() -> None:
    """Write ``proc.<pid>`` into the run folder, atomically, before this process serves."""
    run_dir = os.environ.get("SERVERCOV_RUN_DIR")
    if not run_dir:
        return
    record = {"pid": os.getpid(), "ppid": os.getppid(), "argv": _command_line(),
              "start": _start_time(), "exe": _executable(), "python": sys.executable}
    try:
        # A marker of the image this pid ran before an exec is not this one's.
        if os.path.exists(os.path.join(run_dir, f"exit.{os.getpid()}")):
            os.unlink(os.path.join(run_dir, f"exit.{os.getpid()}"))
        _replace_atomically(os.path.join(run_dir, f"proc.{os.getpid()}"), json.dumps(record))
    except Exception as exc:
        _report_problem(f"cannot register with servercov, its data cannot be accounted "
                        f"for: {exc!r}")


def _mark_orderly_exit() -> None:
    """Write ``exit.<pid>``: this process reached atexit, so coverage saves its data now."""
    run_dir = os.environ.get("SERVERCOV_RUN_DIR")
    if not run_dir:
        return
    try:
        import coverage

        cov: Any = coverage.Coverage.current()
        measured = -1
        if cov is not None and getattr(cov, "_collector", None) is not None:
            measured = sum(1 for found in cov._collector.data.copy().values() if found)
        _replace_atomically(os.path.join(run_dir, f"exit.{os.getpid()}"),
                            json.dumps({"measured": measured}))
    except Exception:
        pass


def _finish_saving_before_a_uwsgi_stop() -> None:
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
            _original_signal(signum, signal.SIG_IGN)
    except (OSError, ValueError):  # ValueError: exit() called from another thread
        pass


def _mark_exits_that_skip_atexit() -> None:
    """Mark ``os._exit`` and the exec family too: coverage saves there, atexit never runs."""
    def wrap(name: str) -> None:
        original = getattr(os, name)

        def marked(*args: Any, **kwargs: Any) -> Any:
            _mark_orderly_exit()
            return original(*args, **kwargs)

        setattr(os, name, marked)

    for name in ("_exit", "execv", "execve"):
        wrap(name)


def _register_uwsgi_workers() -> None:
    """Register uWSGI workers forked without Python's fork hooks (no py-call-osafterfork).

    The ``uwsgi`` module exists only once uWSGI has set Python up, after this
    file ran; its ``post_fork_hook`` runs in each worker with or without the
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
                    if not os.path.exists(os.path.join(
                            os.environ.get("SERVERCOV_RUN_DIR", ""), f"proc.{os.getpid()}")):
                        _register()
                    atexit.unregister(_finish_saving_before_a_uwsgi_stop)
                    atexit.register(_finish_saving_before_a_uwsgi_stop)
                    _start_answering_snapshots()
                    if previous is not None:
                        previous()

                uwsgi.post_fork_hook = post_fork_hook
            except Exception as exc:
                _say(f"cannot register uWSGI workers: {exc!r}")
            return None

    sys.meta_path.insert(0, UwsgiWatch)


def install() -> None:
    """Start measuring this process and make its orderly stops save the data."""
    cov = _start_coverage()
    if cov is None:
        return
    _register()
    os.register_at_fork(after_in_child=_register)
    atexit.register(_mark_orderly_exit)
    _mark_exits_that_skip_atexit()
    in_uwsgi = os.path.basename(_executable()).startswith("uwsgi")
    if in_uwsgi:
        _register_uwsgi_workers()
        atexit.register(_finish_saving_before_a_uwsgi_stop)
    _save_on_sigterm()
    atexit.register(_refuse_unannounced_greenlets, cov)
    _trace_threads_made_in_c()
    _keep_data_of_a_master_that_never_exits(cov)
    # Not in the uWSGI master: a worker forked without Python's fork hooks keeps
    # the master's threading state, and a C thread of the worker that reuses the
    # polling thread's ident would pass for it and never be traced.  Each worker
    # starts its own from the post-fork hook instead.
    if not in_uwsgi:
        _start_answering_snapshots()
    os.register_at_fork(after_in_child=_start_answering_snapshots)
