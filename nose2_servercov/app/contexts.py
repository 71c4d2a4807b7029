"""``contexts = test``: each request measured under the label of the test that sent it.

The runner (nose2, pytest) sends each test's label in ``X-Servercov-Context``;
the helpers hand it to the process's :class:`ContextSwitch` and release their
turn once the request is over (:class:`ReleaseAfterClose` for a WSGI body).
:func:`serving_label` tells the code a request runs (a view enqueuing a job)
which label it is served under, so the label can travel with the job.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any

from nose2_servercov.app import labels
from nose2_servercov.protocol import CONTEXTS_VARIABLE

# The label of the request this thread or task serves now: a context variable,
# so that it follows the request into the views (a thread, an asyncio task).
_serving: ContextVar[str | None] = ContextVar("servercov_serving", default=None)


def serving_label() -> str | None:
    """Return the label of the request being served here; None outside a held request."""
    return _serving.get()


def switch_if_wanted() -> ContextSwitch | None:
    """Return a :class:`ContextSwitch` when servercov runs with ``contexts = test``, else None."""
    return ContextSwitch() if os.environ.get(CONTEXTS_VARIABLE) == "test" else None


class ContextSwitch:
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
        # The coverage and the label switched to last (the coverage itself, not
        # its id: a new one at the old one's address must be switched too).
        self.cov: Any = None
        self.label: str | None = None
        # (the coverage, sys.monitoring.restart_events where a switch must call it)
        self.rearm: tuple[Any, Callable[[], None] | None] | None = None
        self.loop_locks: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

    def __call__(self, label: str) -> str:
        """Switch the process's context to ``label``; return the label it is recorded under."""
        # The label of the context now was checked when it came: a test's
        # requests repeat it, so it is compared, not checked again.
        if label != self.label:
            label = labels.checked(label)  # no markup, no 10 kB label into the data
        coverage = sys.modules.get("coverage")  # only where coverage already runs
        cov = coverage.Coverage.current() if coverage else None
        if cov is not None and (cov is not self.cov or label != self.label):
            self._switch(cov, label)
        return label

    def _switch(self, cov: Any, label: str) -> None:
        """Switch ``cov``'s context to ``label``, re-arming sys.monitoring where it runs."""
        with self.lock:
            if cov is self.cov and label == self.label:
                return
            try:
                rearm = self._rearms(cov)
                cov.switch_context(label)
                if rearm is not None:
                    rearm()
            except Exception as exc:  # never fail a request over measurement
                sys.stderr.write(f"servercov: cannot switch context: {exc!r}\n")
            self.cov, self.label = cov, label

    def _rearms(self, cov: Any) -> Callable[[], None] | None:
        """Return what re-arms sys.monitoring's events at a switch of ``cov``, or None.

        coverage's sysmon core records a location once, then disables its event:
        without ``restart_events()`` the next test's lines already run under an
        earlier test would be missing from its context.  With it, each line is
        recorded under every test whose requests ran it, as under the C tracer
        (the engine picks sysmon only for a coverage whose core works so, see
        coverage_private.sysmon_contexts_refusal), so coverage's warning that
        contexts may be incomplete under sysmon does not apply and is silenced.
        """
        if self.rearm is None or self.rearm[0] is not cov:
            monitoring = getattr(sys, "monitoring", None)
            rearm = None
            if monitoring is not None and cov.get_option("run:core") not in ("ctrace",
                                                                              "pytrace"):
                from nose2_servercov.inserver import coverage_private, registration

                rearm = functools.partial(coverage_private.rearm_sysmon, cov)
                refusal = coverage_private.sysmon_contexts_refusal()  # this process's coverage
                if refusal:  # a server whose coverage is not the engine's
                    registration.report_problem(
                        f"contexts = test under sys.monitoring: {refusal}: the contexts of "
                        "this process may miss lines; set [servercov] core = ctrace")
                else:
                    quiet = list(cov.get_option("run:disable_warnings") or ())
                    cov.set_option("run:disable_warnings", [*quiet, "no-sysmon-context"])
            self.rearm = (cov, rearm)
        return self.rearm[1]

    def hold(self, label: str) -> Callable[[], None]:
        """Wait until no other request runs, switch to ``label``; return the release."""
        lock = self.take(label)
        return Turn(lock) if lock is not None else _nothing_to_release

    def take(self, label: str) -> threading.Lock | None:
        """Wait until no other request runs, switch to ``label``; return the lock to release.

        None when the turn was not had (:meth:`_held_too_long`): nothing to release.
        The WSGI body holds the lock itself (:class:`ReleaseAfterClose`): a
        request's every call counts, and this path runs on each of them.
        """
        # Free but in a threaded server: a try without a timeout is the cheaper call.
        if not (self.serial.acquire(False) or self.serial.acquire(timeout=self.HOLD_TIMEOUT)):
            self._held_too_long(label)
            return None
        if label:  # _enter, inlined, and the check of __call__ that passes a test's 2nd request
            coverage = sys.modules.get("coverage")
            if (label != self.label or coverage is None
                    or coverage.Coverage.current() is not self.cov):
                label = self(label)
        _serving.set(label)
        return self.serial

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
        return once(release)

    def _enter(self, label: str) -> None:
        # An unlabelled request (a ready check, a person at the browser) keeps the
        # context it finds: switching to "" made serve's data unreadable to the
        # accounting (test_browser: "ran no code"), cause not yet found.
        # A job the request enqueues carries the label as checked: a dropped one
        # travels as the dropped label, not counted again in the worker.
        _serving.set(self(label) if label else label)

    def _held_too_long(self, label: str) -> Callable[[], None]:
        # Imported here: only this rare path needs the in-server code.
        from nose2_servercov.inserver.registration import report_problem

        label = labels.checked(label)  # the problem line shows it: no markup, no 10 kB
        report_problem(f"a request held the test context for over {self.HOLD_TIMEOUT:g} s: "
                       f"a request for {label or 'no test'!r} ran beside it, and the lines "
                       "of both may be recorded under either test's context")
        self(label)
        _serving.set(label)
        return lambda: None


def end_turn(lock: threading.Lock) -> None:
    """End a request's turn: it no longer serves a label, and the next request may run."""
    _serving.set(None)  # in the releasing thread's context: the request is over
    lock.release()


def _nothing_to_release() -> None:
    """The release of a turn that was never had (held too long by another request)."""


class Turn:
    """A request's turn in the process; calling it ends the turn, once.

    Its callers (Django's request_finished, an ASGI app's return, a job's end)
    run one after another in one thread, never at once: a swap suffices.
    """

    __slots__ = ("_lock",)

    def __init__(self, lock: threading.Lock) -> None:
        self._lock: threading.Lock | None = lock

    def __call__(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            end_turn(lock)


def once(release: Callable[[], None]) -> Callable[[], None]:
    """Return ``release``, made harmless to call again (close() and __del__ both release)."""
    done = threading.Lock()

    def release_once() -> None:
        if done.acquire(blocking=False):
            release()
    return release_once


class ReleaseAfterClose:
    """A WSGI app's response body; the request's turn ends when the server closes it.

    It holds the turn's lock itself (no :class:`Turn`): this runs on every
    request.  The app's own close() (Flask's teardown functions, for one) still
    runs under the request's context.  close() and __del__ run one after
    another in one thread, never at once: a swap suffices.
    """

    __slots__ = ("_lock", "body")

    def __init__(self, body: Iterable[bytes], lock: threading.Lock | None) -> None:
        self.body = body
        self._lock = lock  # None: no turn to end (held too long, or already ended)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.body)

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            lock, self._lock = self._lock, None
            if lock is not None:  # end_turn, inlined on this hot path
                _serving.set(None)
                lock.release()

    def __del__(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:  # a server that dropped the body without close()
            end_turn(lock)
