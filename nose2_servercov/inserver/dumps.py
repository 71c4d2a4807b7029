"""Write this process's dump when the run asks (snapshots, the save before a stop) and on autosave.

The save exchange (names and answer format in :mod:`nose2_servercov.protocol`):
the run asks by writing a new generation number into ``<control>/request``,
then a byte into each process's FIFO ``<control>/wake.<pid>`` (no signal:
gunicorn and uWSGI own USR1/USR2, and saving inside a handler can deadlock on
coverage's lock).  A daemon thread in every process sleeps in select() on its
FIFO, so it costs the busy server nothing: a thread that woke every 25 ms to
look at the file took 4 % of gunicorn's requests/s (each wake makes the
serving thread hand over the GIL).  It still looks every WAKE_CHECK_SECONDS,
or every POLL_SECONDS where no FIFO could be made.  It writes the process's
dump, ``<data_file>.servercov-dump.pid<pid>``, and answers in
``<control>/ack.<pid>`` whether a dump now holds its data ("N dumped") or it
had measured nothing ("N empty"), so that the run never counts as lost the
data of a process that had none.  With ``SERVERCOV_AUTOSAVE`` it also writes
its dump every so many seconds, when it has run new lines.
"""

from __future__ import annotations

import errno
import os
import select
import shutil
import threading
import time
from typing import TYPE_CHECKING

from nose2_servercov import protocol, safefiles
from nose2_servercov.inserver import coverage_private
from nose2_servercov.inserver.registration import replace_atomically, report_problem, say

if TYPE_CHECKING:
    from coverage import Coverage

POLL_SECONDS = 0.025
WAKE_CHECK_SECONDS = 1.0


def open_wake_fifo(control: str) -> int | None:
    """Make ``<control>/wake.<pid>`` and return it open for reading; None if it cannot be."""
    path = os.path.join(control, protocol.wake_file(os.getpid()))
    try:
        if os.path.lexists(path):
            os.unlink(path)  # left by an ended process whose pid this one has now
        os.mkfifo(path, 0o600)
        # Read-write: opening does not wait for a writer, and reads never see an end.
        return os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_NOFOLLOW)
    except (OSError, AttributeError):  # AttributeError: no mkfifo on this system
        return None


def wait_for_wake(wake: int | None, seconds: float) -> None:
    """Sleep until a request writes to ``wake`` or ``seconds`` pass."""
    if wake is None:
        time.sleep(seconds)
        return
    if select.select([wake], [], [], seconds)[0]:
        try:
            os.read(wake, 4096)
        except OSError:
            pass


def write_dump(cov: Coverage, control: str) -> bool:
    """Write all this process has executed to ``<data_file>.servercov-dump.pid<pid>``.

    The collector's in-memory data is copied, never flushed: ``save()`` and
    ``get_data()`` move it into the data file and clear it while requests are
    traced.  The dump is written under another name, then renamed into place,
    so a reader (or a SIGKILL) never meets half a file.  Return whether there
    was anything to write (False: this process has measured nothing).
    """
    from coverage import CoverageData

    context = coverage_private.current_context(cov)
    # Copy before reading what was flushed: data flushed meanwhile is in the copy.
    live = coverage_private.live_data(cov)
    if live is None:
        return False
    flushed = coverage_private.flushed_data_file(cov)
    if not live and not (flushed and os.path.exists(flushed)):
        return False
    temporary = os.path.join(control, protocol.dump_temporary(os.getpid()))
    safefiles.claim_new(temporary)  # ours, new: sqlite opens it by name and follows links
    dump = CoverageData(temporary)
    if flushed and os.path.exists(flushed):
        # A flush of this process writes that file under this lock.
        with coverage_private.flushed_data_lock(cov):
            earlier = CoverageData(flushed, read_only=True)
            earlier.read()
            dump.update(earlier)
            earlier.close(force=True)
    dump.set_context(context)
    coverage_private.add_live_data(cov, live, dump)
    dump.close(force=True)
    move_into_place(temporary, f"{cov.config.data_file}{protocol.DUMP_INFIX}{os.getpid()}")
    return True


def move_into_place(temporary: str, final: str) -> None:
    """Rename ``temporary`` to ``final``; across file systems, through a copy beside ``final``.

    The run folder is in the temporary folder, often a tmpfs while the project
    is not: a rename from there fails (EXDEV).  The copy is made under a name
    coverage never combines (no ``<data_file>.`` prefix), then renamed, so a
    reader still never meets half a file.
    """
    try:
        os.replace(temporary, final)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    beside = os.path.join(os.path.dirname(final) or ".", f".servercov-move.{os.getpid()}.tmp")
    with open(temporary, "rb") as source, os.fdopen(safefiles.create_new(beside), "wb") as copy:
        shutil.copyfileobj(source, copy)
    os.replace(beside, final)
    os.unlink(temporary)


def measured_size(cov: Coverage) -> tuple[int, int]:
    """Return a cheap fingerprint that changes when the process executes new lines."""
    flushed = coverage_private.flushed_data_file(cov)
    size = os.stat(flushed).st_mtime_ns if flushed and os.path.exists(flushed) else 0
    return coverage_private.measured_count(cov), size


class SaveRequests:
    """One process's side of the save exchange: what it saw, answered and dumped last."""

    def __init__(self, control: str, autosave: float, wake: int | None) -> None:
        self.control, self.autosave, self.wake = control, autosave, wake
        self.request = os.path.join(control, protocol.REQUEST_FILE)
        self.answer = os.path.join(control, protocol.answer_file(os.getpid()))
        self.answered = protocol.REGISTERED_ANSWER
        self.seen: tuple[int, int, int] | None = None  # the request file last read
        self.dumped: tuple[int, int] | None = None  # measured_size at the last dump
        self.next_save = time.monotonic() + autosave
        self.check = POLL_SECONDS if wake is None else WAKE_CHECK_SECONDS

    def wait(self) -> None:
        """Sleep until woken, the next look at the request, or the next autosave."""
        pause = self.check
        if self.autosave:
            pause = min(pause, max(self.next_save - time.monotonic(), 0.0))
        wait_for_wake(self.wake, pause)

    def new_request(self) -> str | None:
        """Return the generation of a request not answered yet, None if there is none."""
        try:
            stat = os.stat(self.request)
        except FileNotFoundError:
            return None
        signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if signature == self.seen:
            return None
        self.seen = signature
        with open(self.request) as f:
            generation = f.read().strip()
        if protocol.is_generation(generation) and generation != self.answered:
            return generation
        return None

    def answer_request(self, cov: Coverage) -> None:
        """Obey a new request: write the dump, then answer whether it holds this process's data."""
        generation = self.new_request()
        if generation is None:
            return
        self.dumped = measured_size(cov)
        dumped = write_dump(cov, self.control)
        replace_atomically(self.answer, protocol.format_answer(generation, dumped=dumped))
        self.answered = generation
        _answered_at[:] = [time.monotonic()]

    def autosave_if_due(self, cov: Coverage) -> None:
        """Write the dump if autosave's time has come and the process ran new lines."""
        if not self.autosave or time.monotonic() < self.next_save:
            return
        self.next_save = time.monotonic() + self.autosave
        if measured_size(cov) != self.dumped:
            self.dumped = measured_size(cov)
            write_dump(cov, self.control)


def _answer_requests(control: str, autosave: float, wake: int | None) -> None:
    """Dump on each new request, and every ``autosave`` seconds if the process ran new lines.

    A failure is said once and tried again later, never raised into the server;
    the thread ends only to refuse, in one line, a coverage whose private names
    servercov does not know (a dump of it could hold wrong line numbers).
    """
    import coverage

    requests = SaveRequests(control, autosave, wake)
    checked, failed = False, False
    while True:
        requests.wait()
        try:
            cov = coverage.Coverage.current()
            if cov is None:
                continue
            refusal = None if checked else coverage_private.refusal(cov,
                                                                   coverage_private.SNAPSHOTS)
            if refusal:
                report_problem(refusal)
                return
            checked = True
            requests.answer_request(cov)
            requests.autosave_if_due(cov)
        except coverage_private.UnknownCoverage as exc:  # never a wrong line number
            report_problem(str(exc))
            return
        except Exception as exc:  # never take the server down; try again next time
            if not failed:
                say(f"cannot write the coverage dump (will retry): {exc!r}")
            failed = True
            time.sleep(1.0)


_answering_pid: list[int] = []  # the pid whose answering thread runs (once per process)
_answered_at: list[float] = []  # when this process last answered a save request


def answered_within(seconds: float) -> bool:
    """Return whether this process answered a save request in the last ``seconds``.

    The run asks every process to save just before it sends the stop signal, so
    a TERM that comes right after an answer is, almost surely, the run's stop.
    """
    return bool(_answered_at) and time.monotonic() - _answered_at[0] < seconds


def start_answering() -> None:
    """Register this process for the save exchange and start its thread (again after fork)."""
    control = os.environ.get(protocol.CONTROL_VARIABLE)
    if not control or _answering_pid == [os.getpid()]:
        return
    _answering_pid[:] = [os.getpid()]
    _answered_at.clear()  # the parent's answers are not this process's
    try:
        autosave = float(os.environ.get(protocol.AUTOSAVE_VARIABLE) or 0)
        wake = open_wake_fifo(control)  # before the registration, which requests look for
        # Registered before it serves anything, so that a request waits for this process.
        replace_atomically(os.path.join(control, protocol.answer_file(os.getpid())),
                           protocol.REGISTERED_ANSWER)
        threading.Thread(target=_answer_requests, args=(control, autosave, wake),
                         name="servercov-snapshots", daemon=True).start()
    except Exception as exc:
        say(f"snapshots and autosave are off in this process: {exc!r}")


def answer_save_requests(*, in_uwsgi: bool) -> None:
    """Answer the save exchange in this process and in every child it forks.

    Not in the uWSGI master: a worker forked without Python's fork hooks keeps
    the master's threading state, and a C thread of the worker that reuses the
    answering thread's ident would pass for it and never be traced.  Each
    worker starts its own from the post-fork hook instead (quirks.py).
    """
    if not in_uwsgi:
        start_answering()
    os.register_at_fork(after_in_child=start_answering)
