"""WSGI middleware with servercov's control route, for any WSGI app and server.

The route exists only when ``SERVERCOV_TOKEN`` is set (servercov sets it for
the servers it starts), and answers only requests carrying that token, so the
same app can ship to production: there the middleware passes every request on.
"""

from __future__ import annotations

import atexit
import hmac
import json
import os
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

TOKEN_VARIABLE = "SERVERCOV_TOKEN"
TOKEN_ENVIRON_KEY = "HTTP_X_SERVERCOV_TOKEN"
CONTEXT_ENVIRON_KEY = "HTTP_X_SERVERCOV_CONTEXT"
CONTEXTS_VARIABLE = "SERVERCOV_CONTEXTS"
DEFAULT_SHUTDOWN_PATH = "/servercov/shutdown/"
# Werkzeug's dev server may skip close() when the client resets the connection
# right after the headers, so the stop also happens this long after answering.
CLOSE_GRACE_SECONDS = 1.0

WSGIApp = Callable[..., Iterable[bytes]]


# A stop aimed at the main thread is sent again this often until the process is
# exiting: a single-threaded server (wsgiref) may swallow the first SystemExit in
# the bare ``except:`` around the request it is finishing.
RESIGNAL_SECONDS = 0.1
RESIGNAL_LIMIT = 100
# The longest the shutdown route waits for uWSGI workers still booting (the
# master pauses two seconds when it respawns workers too fast).
UWSGI_SETTLE_SECONDS = 5.0


def token_matches(given: str | bytes, token: str) -> bool:
    """Return whether ``given`` is ``token``, compared in constant time."""
    if isinstance(given, str):
        given = given.encode("latin-1", "replace")
    return bool(token) and hmac.compare_digest(given, token.encode())


def is_control_path(shutdown_path: str, full_path: str, inner_path: str) -> bool:
    """Return whether a request is for ``shutdown_path``, with or without its mount prefix."""
    wanted = "/" + shutdown_path.strip("/")
    return wanted in ("/" + full_path.strip("/"), "/" + inner_path.strip("/"))


def _has_worker_handlers(pid: int) -> bool:
    """Return whether uWSGI process ``pid`` is alive and has its worker's signal handlers.

    Only a worker catches SIGUSR2 (uWSGI's "what am I doing"), and it sets that
    handler with its stop handlers, once its boot is over; a zombie is not alive.
    """
    try:
        with open(f"/proc/{pid}/status") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
        caught = int(fields["SigCgt"], 16)
    except (OSError, KeyError, ValueError):
        return False
    return not fields.get("State", "").strip().startswith(("Z", "X")) and bool(
        caught & (1 << (signal.SIGUSR2 - 1)))


def _await_uwsgi_workers(uwsgi: Any) -> None:
    """Wait, a bounded time, until no other uWSGI worker is waiting for its respawn or booting.

    uWSGI's stop (the master's SIGHUP to each worker) is lost on a worker forked
    a moment before: until its boot installs the worker's handlers it runs the
    master's, which ignore it, and the master then waits for it for good.
    Workers recycled at the end of a suite (max-requests), and the master's
    two-second pause when it respawns them "too fast", open that window right
    when the shutdown comes.
    """
    if not _has_worker_handlers(os.getpid()):
        return  # a uWSGI whose workers do not catch SIGUSR2: nothing to go by
    deadline = time.monotonic() + UWSGI_SETTLE_SECONDS
    while time.monotonic() < deadline:
        # pid 0: reaped and not respawned yet (cheap: stopped on purpose, no respawn).
        pids = [worker["pid"] for worker in uwsgi.workers()
                if worker["pid"] != os.getpid() and worker["status"] != "cheap"]
        if all(pid and _has_worker_handlers(pid) for pid in pids):
            return
        time.sleep(0.01)


def _master_fifo(uwsgi: Any) -> str | None:
    """Return the uWSGI master's FIFO, where ``q`` is its graceful shutdown; None without."""
    fifo = uwsgi.opt.get("master-fifo")
    if isinstance(fifo, bytes):
        fifo = fifo.decode()
    return str(fifo) if fifo and uwsgi.masterpid() else None


def _stop_uwsgi() -> None:
    """Stop uWSGI so that every worker finishes its requests and runs atexit."""
    import uwsgi  # the module uWSGI gives the Python it embeds

    fifo = _master_fifo(uwsgi)
    if fifo:
        # 'q' on the master FIFO is uWSGI's graceful shutdown; TERM only reloads 2.0.
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, b"q")
        finally:
            os.close(fd)
    elif uwsgi.masterpid():
        os.kill(uwsgi.masterpid(), signal.SIGINT)
    else:
        # No master: every worker is its own server; HUP lets each finish and exit.
        os.killpg(os.getpgid(0), signal.SIGHUP)


def _stop_uwsgi_in_request(environ: dict[str, Any]) -> bool:
    """Under a uWSGI master, wait for booting workers, then stop it now if that is safe.

    Return whether it was stopped.  A single-core worker that writes ``q``
    during the request gets the master's SIGHUP while it is busy, and its
    handler only marks it to leave after the answer.  Sent after the answer,
    the same SIGHUP can meet this worker on its way out (recycled by
    max-requests after this very request) and end its save with exit().  With
    threads the handler never exits; in async mode it exits at once, so there
    the stop waits for the answer to be out.
    """
    uwsgi: Any = sys.modules.get("uwsgi")
    if uwsgi is None or server_name(environ) != "uwsgi":
        return False
    try:
        if not uwsgi.masterpid():
            return False
        _await_uwsgi_workers(uwsgi)
        if getattr(uwsgi, "cores", 0) != 1 or not _master_fifo(uwsgi):
            return False
        _stop_uwsgi()
        return True
    except Exception as exc:  # the stop after the answer still happens
        sys.stderr.write(f"servercov: cannot stop uWSGI from the request: {exc!r}\n")
        return False


def _pool_parent() -> int | None:
    """Return the pid of the multiprocessing parent that supervises this process, if any."""
    process = sys.modules.get("multiprocessing.process")
    parent = process.parent_process() if process is not None else None
    return parent.pid if parent is not None and parent.pid == os.getppid() else None


def _monkey_patched() -> bool:
    """Return whether gevent or eventlet has patched threading (thread idents are greenlets')."""
    gevent_monkey = sys.modules.get("gevent.monkey")
    eventlet_patcher = sys.modules.get("eventlet.patcher")
    try:
        return bool((gevent_monkey and gevent_monkey.is_module_patched("threading"))
                    or (eventlet_patcher and eventlet_patcher.is_monkey_patched("thread")))
    except Exception:
        return False


def _stop_main_thread() -> None:
    """Send SIGTERM to the main thread until the process is on its way out.

    servercov's in-server hook turns it into SystemExit; the select() of a
    server waiting for connections wakes up at once.  A server that swallows
    the SystemExit while it finishes a request gets it again, until the main
    thread has finished or atexit has begun (a TERM then would cut the save).
    """
    if _monkey_patched():
        _exit_main_greenlet()
        return
    exiting = threading.Event()
    atexit.register(exiting.set)  # registered last, so it runs first at exit
    main = threading.main_thread()
    for _ in range(RESIGNAL_LIMIT):
        if exiting.is_set() or not main.is_alive():
            return
        signal.pthread_kill(main.ident or 0, signal.SIGTERM)
        time.sleep(RESIGNAL_SECONDS)


def _exit_main_greenlet() -> None:
    """Raise SystemExit in the program's main greenlet, as gevent does for Ctrl-C.

    Under gevent or eventlet this "thread" is a greenlet of the main thread: a
    signal sent from here would run its handler here, and threading swallows a
    SystemExit raised in a thread.
    """
    import greenlet  # type: ignore[import-untyped]

    root = greenlet.getcurrent()
    while root.parent is not None:
        root = root.parent
    root.throw(SystemExit(128 + signal.SIGTERM))


def server_name(environ: dict[str, Any]) -> str:
    """Return which server runs this process: uwsgi, gunicorn, hypercorn, uvicorn or other."""
    software = str(environ.get("SERVER_SOFTWARE", ""))
    if "uwsgi.version" in environ or "uwsgi" in sys.modules:
        return "uwsgi"
    if software.startswith("gunicorn") or "gunicorn.arbiter" in sys.modules:
        return "gunicorn"  # any worker class, uvicorn's included
    for name in ("hypercorn", "uvicorn"):
        if name in sys.modules:
            return name
    return "other"


def stop_server(environ: dict[str, Any]) -> None:
    """Ask the server this request runs under to stop in its orderly way."""
    server = server_name(environ)
    if server == "uwsgi":
        _stop_uwsgi()
    elif server == "gunicorn":
        os.kill(os.getppid(), signal.SIGTERM)  # the arbiter stops every worker gracefully
    elif server in ("hypercorn", "uvicorn"):
        # Both handle TERM themselves; with --workers or --reload the parent is a
        # supervisor that stops its workers its own way (hypercorn: an event).
        os.kill(_pool_parent() or os.getpid(), signal.SIGTERM)
    else:
        # Werkzeug's dev server, waitress, wsgiref, Django's runserver.
        _stop_main_thread()


def _stop_when_sent(sent: threading.Event, environ: dict[str, Any]) -> None:
    sent.wait(CLOSE_GRACE_SECONDS)
    try:
        stop_server(environ)
    except Exception as exc:  # servercov's stop signal then stops it from outside
        sys.stderr.write(f"servercov: the shutdown route could not stop the server: "
                         f"{exc!r}\n")


def stop_after(sent: threading.Event, environ: dict[str, Any]) -> None:
    """Stop the server once ``sent`` is set (the answer is out), or after a grace period.

    Under a uWSGI master the stop may happen at once (``_stop_uwsgi_in_request``).
    """
    if _stop_uwsgi_in_request(environ):
        return
    threading.Thread(target=_stop_when_sent, args=(sent, dict(environ)),
                     name="servercov-stop", daemon=True).start()


class _StopAfterResponse:
    """A response body that stops the server once it has been sent."""

    def __init__(self, body: bytes, environ: dict[str, Any]) -> None:
        self.body = body
        self.sent = threading.Event()
        # stop_after keeps a copy of the environ: uWSGI empties the request's once the
        # response is sent, and a stop that cannot tell uWSGI from Werkzeug would
        # TERM a uWSGI worker.
        stop_after(self.sent, environ)

    def __iter__(self) -> Iterator[bytes]:
        yield self.body
        self.sent.set()  # the server asked for more: the body is written

    def close(self) -> None:
        self.sent.set()


def _report_problem(message: str) -> None:
    """Tell the session of a problem that makes this process's data untrustworthy.

    The same contract as ``inserver._report_problem``: one line on stderr and
    one in ``$SERVERCOV_RUN_DIR/problem.<pid>``, which the session names and
    fails the run for.
    """
    sys.stderr.write(f"servercov: pid {os.getpid()}: {message}\n")
    run_dir = os.environ.get("SERVERCOV_RUN_DIR")
    if run_dir:
        try:
            with open(os.path.join(run_dir, f"problem.{os.getpid()}"), "a") as f:
                f.write(message + "\n")
        except OSError:
            pass


class _ContextSwitch:
    """Record what each request runs under the id of the test that sent it.

    coverage's context is one per process, not per thread: the lines every
    thread runs go to the context set last.  So while ``contexts = test`` a
    server process runs one request at a time (:meth:`hold`, or
    :meth:`hold_async` on an event loop, until the release it returns is called),
    labelled or not, and switches the context when a label changes
    (switch_context flushes the collector, safe only while no other request is
    traced).  Tests that run at once (pytest-xdist, nose2's mp plugin, threads)
    then never mix their lines; the price is that the server's processes
    answer one request each at a time.
    """

    # A request that never closes its response (a client gone mid-answer on a
    # server that skips close()) must not stop every later request for good.
    HOLD_TIMEOUT = 30.0

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.serial = threading.Lock()  # held from the request's start to its close()
        self.current: tuple[int, str] | None = None
        self.loop_locks: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

    def __call__(self, label: str) -> None:
        coverage = sys.modules.get("coverage")  # only where coverage already runs
        cov = coverage.Coverage.current() if coverage else None
        if cov is None or self.current == (id(cov), label):
            return
        with self.lock:
            if self.current != (id(cov), label):
                try:
                    cov.switch_context(label)
                except Exception as exc:  # never fail a request over measurement
                    sys.stderr.write(f"servercov: cannot switch context: {exc!r}\n")
                self.current = (id(cov), label)

    def hold(self, label: str) -> Callable[[], None]:
        """Wait until no other request runs, switch to ``label``; return the release."""
        if not self.serial.acquire(timeout=self.HOLD_TIMEOUT):
            return self._held_too_long(label)
        self._enter(label)
        return _once(self.serial.release)

    async def hold_async(self, label: str) -> Callable[[], None]:
        """:meth:`hold` for a request on an event loop, whose turn comes at an ``await``.

        The lock is the loop's own (a blocking wait would stop the loop that runs
        the holder); the release may come from any thread (Django closes its
        async responses in a worker thread).
        """
        import asyncio

        loop = asyncio.get_running_loop()
        lock = self.loop_locks.get(loop)
        if lock is None:
            lock = self.loop_locks[loop] = asyncio.Lock()
        try:
            await asyncio.wait_for(lock.acquire(), self.HOLD_TIMEOUT)
        except asyncio.TimeoutError:
            return self._held_too_long(label)
        self._enter(label)

        def release() -> None:
            try:
                loop.call_soon_threadsafe(lock.release)
            except RuntimeError:  # the loop is closed: nothing waits on its lock
                pass
        return _once(release)

    def _enter(self, label: str) -> None:
        # An unlabelled request (a ready check, a person at the browser) keeps the
        # context it finds: switching to "" made serve's data unreadable to the
        # accounting (test_browser: "ran no code"), cause not yet found.
        if label:
            self(label)

    def _held_too_long(self, label: str) -> Callable[[], None]:
        _report_problem(f"a request held the test context for over {self.HOLD_TIMEOUT:g} s: "
                        f"a request for {label or 'no test'!r} ran beside it, and the lines "
                        "of both may be recorded under either test's context")
        self(label)
        return lambda: None


def _once(release: Callable[[], None]) -> Callable[[], None]:
    """Return ``release``, made harmless to call again (close() and __del__ both release)."""
    once = threading.Lock()

    def release_once() -> None:
        if once.acquire(blocking=False):
            release()
    return release_once


class _ReleaseAfterClose:
    """The app's response body; the context is released when the server closes it.

    The app's own close() (Flask's teardown functions, for one) still runs
    under the request's context.
    """

    def __init__(self, body: Iterable[bytes], release: Callable[[], None]) -> None:
        self.body = body
        self.release = release

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.body)

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.release()

    def __del__(self) -> None:
        self.release()  # a server that dropped the body without close()


def _answer(start_response: Callable[..., Any], status: str, payload: dict[str, Any]) -> bytes:
    body = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    return body


class ServercovMiddleware:
    """Wrap a WSGI app; add the token-gated shutdown route when servercov runs it."""

    def __init__(self, app: WSGIApp, *, shutdown_path: str = DEFAULT_SHUTDOWN_PATH,
                 token: str | None = None) -> None:
        self.app = app
        self.shutdown_path = "/" + shutdown_path.strip("/")
        self.token = token if token is not None else os.environ.get(TOKEN_VARIABLE, "")
        self.switch_context = (_ContextSwitch() if os.environ.get(CONTEXTS_VARIABLE) == "test"
                               else None)

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        inner = environ.get("PATH_INFO", "")
        full = environ.get("SCRIPT_NAME", "") + inner
        if not self.token or not is_control_path(self.shutdown_path, full, inner):
            if self.switch_context is None:
                return self.app(environ, start_response)
            release = self.switch_context.hold(environ.get(CONTEXT_ENVIRON_KEY) or "")
            try:
                return _ReleaseAfterClose(self.app(environ, start_response), release)
            except BaseException:
                release()
                raise
        if not token_matches(environ.get(TOKEN_ENVIRON_KEY, ""), self.token):
            return [_answer(start_response, "403 Forbidden",
                            {"error": "X-Servercov-Token is missing or wrong"})]
        body = _answer(start_response, "202 Accepted", {"status": "stopping"})
        return _StopAfterResponse(body, environ)


def wrap(app: WSGIApp, *, shutdown_path: str = DEFAULT_SHUTDOWN_PATH) -> WSGIApp:
    """Return ``app`` with servercov's control route, or ``app`` itself without a token."""
    if not os.environ.get(TOKEN_VARIABLE):
        return app
    return ServercovMiddleware(app, shutdown_path=shutdown_path)
