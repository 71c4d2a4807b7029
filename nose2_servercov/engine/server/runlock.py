"""The run lock: one measured run at a time per data folder, and what an earlier run left.

Two runs measuring into the same folder at once would erase or mix each
other's data files (and coverage would meet half-erased SQLite files: "no
such table").  So every run — nose2, ``servercov run``, ``serve``, pytest —
takes an exclusive ``flock`` on ``<control folder>/run.lock`` (the
``.servercov`` folder beside ``[run] data_file``) before it erases or starts
anything, and keeps it until its reports are written.  A second run is
refused in one line naming the first one's pid; nothing of it starts and
nothing is erased.

The server's keeper holds the lock too: when a runner is SIGKILLed, the lock
stays taken until the keeper has stopped the server, so the next run waits
for that (briefly) instead of erasing files a dying server still writes.

Beside the lock, ``run.json`` records the run: the runner's pid, the
server's process group and the test command, each with its start time from
``/proc``.  A run that did not end in order (its runner and its keeper both
killed) leaves it behind; the next run reads it, stops what is still alive
of that run (proved by start time, so a reused pid is never signalled) and
only then erases the stale data files, so a leftover can never write into
the new run's data.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from nose2_servercov import procfs, protocol, safefiles
from nose2_servercov.engine.server.keeper import stop_guarded
from nose2_servercov.errors import ServerStartError

LOCK_FILE = protocol.RUN_LOCK_FILE
STATE_FILE = protocol.RUN_STATE_FILE
# How long a run waits for the keeper of a killed run to stop its server
# (the keeper's own bound is KEEPER_GRACE plus a second).
KEEPER_WAIT = 15.0
COMMAND_CHARS = 160


def command_line(pid: int) -> str:
    """Return the command line of ``pid``, shortened for a message; '' if unknown."""
    words = procfs.command_line(pid) or []
    # Bytes that are no UTF-8 become U+FFFD: the text goes into messages and run.json.
    text = " ".join(words).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text if len(text) <= COMMAND_CHARS else text[:COMMAND_CHARS - 3] + "..."


@dataclass(frozen=True)
class RunState:
    """Who runs in a folder: the runner, its server's group and its test command."""

    runner_pid: int
    runner_started: int
    runner_command: str = ""
    server_pgid: int = 0
    server_started: int = 0
    command_pid: int = 0
    command_started: int = 0

    @classmethod
    def of_this_process(cls) -> RunState:
        """Return the state of a run whose runner is this process."""
        pid = os.getpid()
        return cls(pid, procfs.start_time(pid) or 0, command_line(pid))

    def runner_alive(self) -> bool:
        """Return whether the runner still runs (same pid, same start time)."""
        return procfs.start_time(self.runner_pid) == self.runner_started

    def describe(self) -> str:
        """Return 'pid N: COMMAND' for a message."""
        return f"pid {self.runner_pid}" + (f": {self.runner_command}"
                                           if self.runner_command else "")


def read_run_state(path: Path) -> RunState | None:
    """Return the run state in ``path``, None if there is none or it cannot be understood."""
    try:
        fields = json.loads(path.read_text())
        state = RunState(**fields)
    except (OSError, ValueError, TypeError):
        return None
    numbers = (state.runner_pid, state.runner_started, state.server_pgid, state.server_started,
               state.command_pid, state.command_started)
    if not all(isinstance(n, int) and n >= 0 for n in numbers):
        return None
    return state


def unsafe_folder(exc: safefiles.UnsafePlace, folder: Path) -> str:
    """Return the one line that refuses a control folder another user could redirect."""
    return (f"{exc}: refused, since servercov writes its run files there and whoever "
            f"controls it could redirect them; remove it ({folder.name} is made anew, "
            "mode 0700), or give [run] data_file a folder of your own")


# The run locks this process holds, by lock file.
_HELD: dict[Path, RunLock] = {}


class RunLock:
    """Hold the run lock of one folder for one run, and clear what an earlier run left."""

    def __init__(self, folder: Path, *, say: Callable[[str], None]) -> None:
        self.folder = folder
        self.say = say
        self.lock_path = folder / LOCK_FILE
        self.state_path = folder / STATE_FILE
        self.fd: int | None = None
        self.state: RunState | None = None
        # Set once the run's server is gone: a later run of this same process may then
        # take the lock over, as a run of another process could once this one ended.
        self.server_gone = False

    def acquire(self, *, stop_signal: signal.Signals, timeout: float) -> None:
        """Take the lock, or raise naming the run that has it; then end an earlier leftover.

        ``stop_signal`` and ``timeout`` are how a leftover server is stopped.
        """
        earlier = None
        held = _HELD.get(self.lock_path)
        if held is not None and held is not self and held.server_gone:
            held.release()  # a stopped run of this process that never reported
        try:
            self._lock()
            earlier = read_run_state(self.state_path)
            self.state = RunState.of_this_process()
            self._write(self.state)
        except OSError as exc:
            self.release()
            raise ServerStartError(
                f"cannot take the run lock {self.lock_path}: {exc.strerror or exc} (servercov "
                "writes there, beside [run] data_file, to keep two runs from mixing their "
                "data)") from None
        if earlier is not None:
            self._end_leftover(earlier, stop_signal=stop_signal, timeout=timeout)

    def _lock(self) -> None:
        if not self.folder.parent.is_dir():
            raise ServerStartError(
                f"[run] data_file: the folder {self.folder.parent} does not exist (the data "
                "files go there, and servercov's run lock); create it or fix data_file")
        self.make_folder()
        deadline = time.monotonic() + KEEPER_WAIT
        while True:
            try:
                fd = safefiles.open_own(self.lock_path, os.O_RDWR | os.O_CREAT)
            except safefiles.UnsafePlace as exc:
                raise ServerStartError(unsafe_folder(exc, self.folder)) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                self._refuse_or_wait(deadline)
                continue
            except OSError:
                os.close(fd)
                raise
            # The run before may have removed the file between our open and our lock:
            # then the lock is on a file nobody else will ever see. Take it again.
            try:
                same = os.stat(self.lock_path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self.fd = fd
        _HELD[self.lock_path] = self

    def make_folder(self) -> None:
        """Make the control folder this user's own (0700), or refuse it in one line."""
        try:
            safefiles.private_folder(self.folder)
        except safefiles.UnsafePlace as exc:
            raise ServerStartError(unsafe_folder(exc, self.folder)) from None

    def _refuse_or_wait(self, deadline: float) -> None:
        holder = read_run_state(self.state_path)
        if holder is not None and holder.runner_alive():
            raise ServerStartError(
                f"another servercov run ({holder.describe()}) is measuring into "
                f"{self.folder.parent}; two runs at once there would mix or erase each "
                "other's data: wait until it ends, or give this run a [run] data_file in "
                "another folder")
        if time.monotonic() > deadline:
            who = f"whose runner ({holder.describe()}) is gone" if holder else "unknown"
            raise ServerStartError(
                f"{self.lock_path} has been locked for over {KEEPER_WAIT:g} s by a run "
                f"{who}; its keeper may still be stopping its server: see `ps` for "
                "processes of that run")
        time.sleep(0.05)  # the run ending, or the keeper of a killed run still stopping

    def _end_leftover(self, earlier: RunState, *, stop_signal: signal.Signals,
                      timeout: float) -> None:
        """Stop what is still alive of a run that did not end in order, before any erase."""
        groups = [(earlier.server_pgid, earlier.server_started)] if earlier.server_pgid else []
        pids = [(earlier.command_pid, earlier.command_started)] if earlier.command_pid else []
        ended, how = stop_guarded(groups, pids, stop_signal=int(stop_signal), grace=timeout)
        what = (f"the server of an earlier run ({earlier.describe()}), "
                f"process group {earlier.server_pgid}," if earlier.server_pgid
                else f"an earlier run ({earlier.describe()})")
        if not ended:
            with contextlib.suppress(OSError):
                self._write(earlier)  # still the record of what is left
            self.release(keep_state=True)
            raise ServerStartError(
                f"{what} did not end in order and {how}: not starting, since they could "
                "still write into this run's data")
        if how == "nothing was left running":
            self.say(f"{what} did not end in order (killed?); its data files are erased, "
                     "not reported")
        else:
            self.say(f"{what} was left running: {how}; its data files are erased, "
                     "not reported")

    def _write(self, state: RunState) -> None:
        temporary = self.state_path.with_name(f"{STATE_FILE}.{os.getpid()}.tmp")
        safefiles.replace_atomically(self.state_path, json.dumps(asdict(state)), temporary)

    def held(self) -> tuple[int, ...]:
        """Return the lock's descriptor (for the keeper to hold), if taken."""
        return () if self.fd is None else (self.fd,)

    def record_server(self, pgid: int) -> None:
        """Record the server's process group, so a later run can find it if it is left."""
        if self.state is not None and self.fd is not None:
            self.state = replace(self.state, server_pgid=pgid,
                                 server_started=procfs.start_time(pgid) or 0)
            with contextlib.suppress(OSError):  # the keeper guards it all the same
                self._write(self.state)

    def record_command(self, pid: int) -> None:
        """Record the test command (``servercov run``), for the same reason."""
        if self.state is not None and self.fd is not None:
            self.state = replace(self.state, command_pid=pid,
                                 command_started=procfs.start_time(pid) or 0)
            with contextlib.suppress(OSError):
                self._write(self.state)

    def release(self, *, keep_state: bool = False) -> None:
        """Remove the run's files and let the next run in; idempotent."""
        if self.fd is None:
            return
        if not keep_state:
            with contextlib.suppress(OSError):
                self.state_path.unlink()
        with contextlib.suppress(OSError):
            self.lock_path.unlink()
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None
        if _HELD.get(self.lock_path) is self:
            del _HELD[self.lock_path]
        with contextlib.suppress(OSError):
            self.folder.rmdir()  # only when empty (serve keeps serve.json there)
