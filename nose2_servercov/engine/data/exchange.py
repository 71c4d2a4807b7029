"""The save exchange: ask every measured process of a server to dump its data, and wait.

One conversation, used by everything that needs the server's data on disk
while it runs: snapshots (``servercov serve`` and ``snapshot``, the remote
agent) and the save before a stop signal.  Autosave is the in-server half of
it, run on a timer with nobody waiting.  The other half runs in every
measured process (:mod:`nose2_servercov.inserver`); the file names and the
answer format are in :mod:`nose2_servercov.protocol`.

1. A new generation number is picked above the last request *and above every
   answer* in the control folder, so an answer left from before (a request
   file deleted or rewritten, a process whose pid came back) can never pass
   for an answer to this request.
2. It is written into ``<control>/request`` (renamed into place whole).
3. The server's process group is listed; every process registered for the
   exchange (``ack.<pid>`` exists: it wrote "0" before it served anything)
   that has not answered yet gets a byte in its FIFO ``wake.<pid>``, where its
   answering thread sleeps, so it answers now rather than at its next check.
4. Each answers ``N dumped`` (its dump holds all it ran) or ``N empty`` (it
   had measured nothing, so it wrote no dump); a bare ``N`` reads as dumped.
   The wait ends when every live registered process has answered, on a fresh
   list of the group (a worker forked meanwhile must answer too), or at the
   deadline.  A process that ends before it answers drops out: its data
   file, written at its exit, is what counts for it.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nose2_servercov import procfs, protocol, safefiles
from nose2_servercov.errors import ServeError

RESCAN_SECONDS = 0.25  # how often the whole group is listed again while waiting
SAVE_WAIT = 5.0  # seconds, at most, for every process to save before the stop signal


@dataclass(frozen=True)
class Answers:
    """How the live processes of the server's group answered request ``generation``."""

    generation: int = 0
    dumped: frozenset[int] = frozenset()  # answered: its dump holds all it ran
    empty: frozenset[int] = frozenset()  # answered: it had measured nothing, wrote no dump
    late: frozenset[int] = frozenset()  # registered, but no answer by the deadline
    # Never registered for the exchange: not measured (a shell, a C program).
    unregistered: frozenset[int] = frozenset()

    @property
    def answered(self) -> list[int]:
        """Return the pids that answered, with a dump or empty, in order."""
        return sorted(self.dumped | self.empty)

    def merged(self, other: Answers) -> Answers:
        """Return the answers of two groups together (the server's and a section's)."""
        return Answers(max(self.generation, other.generation), self.dumped | other.dumped,
                       self.empty | other.empty, self.late | other.late,
                       self.unregistered | other.unregistered)


class MalformedRequest(ServeError):
    """The request file held what servercov never writes; it has been removed."""

    def __init__(self, path: Path, text: str) -> None:
        super().__init__(f"{path} held a malformed snapshot request {text[:40]!r} "
                         "(servercov writes a decimal number there): the server processes "
                         "ignored it and no report was written; it is removed, so the next "
                         "snapshot works")
        self.path = path
        self.text = text[:40]


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def next_generation(control: Path) -> int:
    """Return a generation above the last request and above every answer, or raise.

    A request the server processes would not obey (anything but a decimal
    number) is removed and :class:`MalformedRequest` raised: what it was
    meant to do is unknown, and nobody may go on as if all were well.
    """
    request = control / protocol.REQUEST_FILE
    text = _read(request)
    if text is not None and not protocol.is_generation(text):
        request.unlink(missing_ok=True)
        raise MalformedRequest(request, text)
    answers = [protocol.parse_answer(_read(path) or "") for path in control.iterdir()
               if protocol.pid_of(path.name, protocol.answer_file) is not None]
    return max([int(text or 0), *(answer[0] for answer in answers if answer)]) + 1


def _answer(control: Path, pid: int) -> tuple[int, bool] | None:
    """Return ``pid``'s last answer as (generation, dumped); None if it never registered.

    An answer servercov did not write counts as no answer yet, so the wait
    goes on for a real one rather than go on without that process.
    """
    text = _read(control / protocol.answer_file(pid))
    if text is None:
        return None
    return protocol.parse_answer(text) or (-1, False)


def _wake(control: Path, pid: int) -> None:
    """Write a byte into ``pid``'s wake FIFO, so its answering thread looks now.

    No FIFO (it could not be made there): that process looks every 25 ms anyway.
    """
    try:
        fd = os.open(control / protocol.wake_file(pid), os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            os.write(fd, b"!")
    except OSError:
        pass  # full: it has been woken already
    finally:
        os.close(fd)


class _Wait:
    """One request's wait: who is in the group, who answered, who was woken."""

    def __init__(self, control: Path, pgid: int, generation: int) -> None:
        self.control, self.pgid, self.generation = control, pgid, generation
        self.members: list[int] = []
        self.answers: dict[int, tuple[int, bool] | None] = {}
        self.woken: set[int] = set()
        self.next_scan = 0.0  # list the group at once, then every RESCAN_SECONDS

    def waiting(self) -> list[int]:
        """Return the live registered processes yet to answer, [] once all have.

        Between two lists of the group only the answers are read: listing all
        of ``/proc`` every few milliseconds would take the server's CPU.
        """
        while True:
            fresh = time.monotonic() >= self.next_scan
            if fresh:
                self.members = procfs.group_members(self.pgid)
                self.next_scan = time.monotonic() + RESCAN_SECONDS
            self.answers = {pid: _answer(self.control, pid) for pid in self.members}
            waiting = [pid for pid, answer in self.answers.items()
                       if answer is not None and answer[0] < self.generation
                       and procfs.is_alive(pid, pgid=self.pgid)]
            for pid in waiting:
                if pid not in self.woken:
                    _wake(self.control, pid)
                    self.woken.add(pid)
            if waiting or fresh:
                return waiting
            self.next_scan = 0.0  # all answered: list the group once more to be sure

    def result(self, late: list[int]) -> Answers:
        """Return every live member's answer; one that ended before it answered is left out."""
        answered = {pid: answer[1] for pid, answer in self.answers.items()
                    if answer is not None and answer[0] >= self.generation and pid not in late}
        return Answers(
            self.generation,
            dumped=frozenset(pid for pid, dumped in answered.items() if dumped),
            empty=frozenset(pid for pid, dumped in answered.items() if not dumped),
            late=frozenset(late),
            unregistered=frozenset(pid for pid, answer in self.answers.items() if answer is None))


def ask_for_dumps(control: Path, pgid: int, *, timeout: float,
                  progress: Callable[[float, list[int]], None] | None = None) -> Answers:
    """Ask every measured process of group ``pgid`` for a dump; wait up to ``timeout`` s.

    Return how every live process answered (see the module doc); a process
    still silent at the deadline is ``late``, never an error here: the
    caller knows what that costs.  ``progress`` is called about once a second with
    the seconds waited and the pids still awaited.  Raise
    :class:`MalformedRequest`, or OSError when the request cannot be written.
    """
    generation = next_generation(control)
    safefiles.replace_atomically(control / protocol.REQUEST_FILE, str(generation),
                                 control / protocol.REQUEST_TEMPORARY)
    wait = _Wait(control, pgid, generation)
    started = time.monotonic()
    next_progress = started + 1.0
    while True:
        waiting = wait.waiting()
        if not waiting:
            return wait.result([])
        if time.monotonic() - started > timeout:
            return wait.result(waiting)
        if progress is not None and time.monotonic() >= next_progress:
            progress(time.monotonic() - started, waiting)
            next_progress += 1.0
        time.sleep(0.005)


def save_before_signal(control: Path, pgid: int, *, timeout: float) -> tuple[Answers, list[str]]:
    """Have every measured process of group ``pgid`` put its data on disk before a signal.

    Some parents kill their children when signalled (Django's autoreloader
    SIGKILLs its serving child ~3 ms after SIGTERM), so the data goes on disk
    first.  Never raise: the stop goes on whatever happens here.  Return the
    answers and a note for whatever went wrong.
    """
    wait = min(timeout, SAVE_WAIT)
    notes: list[str] = []
    answers = Answers()
    for _ in range(2):  # a malformed request is removed: the second ask is a clean one
        try:
            answers = ask_for_dumps(control, pgid, timeout=wait)
            break
        except MalformedRequest as exc:
            notes.append(f"{exc.path} held a malformed save request {exc.text!r}, which "
                         "servercov never writes: removed")
        except OSError as exc:
            notes.append(f"could not ask the server processes to save first: {exc}")
            break
    if answers.late:
        notes.append(f"server processes {sorted(answers.late)} did not save their data within "
                     f"{wait:g} s of being asked, before the stop signal")
    return answers, notes
