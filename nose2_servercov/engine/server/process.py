"""ServerProcess: one server command in its own process group, from start to reaped.

Every wait has a deadline, every stop escalates (shutdown request, stop
signal, KILL) and ends with the whole process group gone, and the server's
output is always drained, so a chatty server never blocks on a full pipe.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from nose2_servercov import procfs
from nose2_servercov.engine.server.keeper import Keeper
from nose2_servercov.errors import ServerStartError

TAIL_LINES = 30
REFUSED_GRACE = 0.5  # seconds a server that refused the shutdown call may take to end
PF_EXITING = 0x4  # /proc/<pid>/stat flags: the process has begun to exit (linux/sched.h)
# Seconds the keeper gives the server to save its data after the process that
# started it died, before KILL: orphans must end within a second or two.
KEEPER_GRACE = 2.0


@dataclass(frozen=True)
class StopOutcome:
    """How a server stopped: the step that ended it, how long the stop took."""

    step: str
    seconds: float
    notes: tuple[str, ...] = ()
    exit_code: int | None = None
    exited_early: bool = False


@dataclass
class _StopLog:
    """What a stop has seen so far: its notes, and whether the server ended by itself."""

    notes: list[str] = field(default_factory=list)
    early: int | None = None  # the exit code of a server that ended before anything asked

    def exited_early(self, code: int | None) -> None:
        """Note that the server ended (or began to end) before anything asked it to."""
        self.early = code
        self.notes.append(f"the server had exited with code {code} before the stop")


class ServerProcess:
    """Run ``argv`` as the leader of a new process group and manage its whole life."""

    def __init__(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str],
                 log: Path | None = None, echo: IO[str] | None = None,
                 ready_output: re.Pattern[str] | None = None, name: str = "server") -> None:
        self.argv = list(argv)
        self.name = name  # what its echoed output lines start with
        # Seen in the output as it is drained: a section's `ready_output`.
        self.ready_output = ready_output
        self.output_matched = threading.Event()
        self.cwd = cwd
        self.env = dict(env)
        self.log = log
        self.echo = echo
        self._popen: subprocess.Popen[bytes] | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._pump: threading.Thread | None = None
        self._outcome: StopOutcome | None = None
        self._lock = threading.Lock()
        self._keeper: Keeper | None = None

    @property
    def pid(self) -> int:
        """Return the pid of the started command, also its process group id."""
        assert self._popen is not None, "the server was not started"
        return self._popen.pid

    def start(self, *, stop_signal: signal.Signals = signal.SIGTERM,
              grace: float = KEEPER_GRACE, hold: Sequence[int] = ()) -> None:
        """Start the command in its own process group, its output drained by a thread.

        A keeper process started first guards the group: if this process dies
        before stop() (even by SIGKILL), it sends ``stop_signal`` to the group,
        then KILL after ``grace`` seconds.  It holds the descriptors ``hold``
        (the run lock) until then.
        """
        if self.log:
            self.log.parent.mkdir(parents=True, exist_ok=True)
        log_file = open(self.log, "ab") if self.log else None  # noqa: SIM115 (the pump closes it)
        keeper = Keeper(stop_signal=stop_signal, grace=grace, hold=hold)
        try:
            keeper.start()
        except OSError as exc:
            if log_file:
                log_file.close()
            raise ServerStartError(f"cannot start servercov's keeper process "
                                   f"({sys.executable}): {exc.strerror or exc}") from None
        try:
            self._popen = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            keeper.disarm()
            if log_file:
                log_file.close()
            raise ServerStartError(f"cannot start the server command {self.argv[0]!r} "
                                   f"in {self.cwd}: {exc.strerror or exc}") from None
        keeper.guard_group(self._popen.pid)
        self._keeper = keeper
        self._pump = threading.Thread(target=self._drain, args=(log_file,),
                                      name="servercov-output", daemon=True)
        self._pump.start()

    def guard(self, pid: int) -> None:
        """Have the keeper also end ``pid`` (the test command) if this process dies."""
        if self._keeper is not None:
            self._keeper.guard_pid(pid)

    def _drain(self, log_file: IO[bytes] | None) -> None:
        assert self._popen is not None and self._popen.stdout is not None
        stdout = self._popen.stdout
        try:
            # Bounded reads: a line without an end cannot grow without bound.
            for raw in iter(lambda: stdout.readline(8192), b""):
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                self._tail.append(line)
                if self.ready_output is not None and self.ready_output.search(line):
                    self.output_matched.set()
                if log_file:
                    log_file.write(raw)
                    log_file.flush()
                if self.echo:
                    with contextlib.suppress(Exception):
                        self.echo.write(f"{self.name}: {line}\n")
                        self.echo.flush()
        finally:
            self._popen.stdout.close()
            if log_file:
                log_file.close()

    def tail(self, *, settle: float = 0.0) -> str:
        """Return the last output lines, indented, with a pointer to the log if any."""
        if settle and self._pump is not None:
            self._pump.join(settle)
        lines = [f"    | {line}" for line in self._tail] or ["    (the server printed nothing)"]
        if self.log:
            lines.append(f"    (full output in {self.log})")
        return "\n".join(lines)

    @property
    def stopped(self) -> bool:
        """Return whether stop() has run."""
        return self._outcome is not None

    def exit_code(self) -> int | None:
        """Return the command's exit code, None while it runs."""
        return None if self._popen is None else self._popen.poll()

    def alive(self) -> bool:
        """Return whether any process of the group still runs."""
        if self._popen is None:
            return False
        self._popen.poll()
        return bool(procfs.group_members(self.pid))

    @property
    def _who(self) -> str:
        return "the server" if self.name == "server" else "the command"

    def wait_until_ready(self, is_ready: Callable[[], bool], *, timeout: float, awaited: str,
                         progress: Callable[[float], None] | None = None) -> float:
        """Poll ``is_ready`` until true; raise at once if the server exits, or at the deadline.

        ``progress`` is called about once a second with the seconds waited so far.
        """
        assert self._popen is not None
        started = time.monotonic()
        deadline = started + timeout
        interval = 0.005  # the ideal hand-made poll: a refused connect costs ~0.1 ms
        next_progress = started + 1.0
        while True:
            if progress is not None and time.monotonic() >= next_progress:
                progress(time.monotonic() - started)
                next_progress += 1.0
            code = self._popen.poll()
            if code is not None:
                elapsed = time.monotonic() - started
                raise ServerStartError(
                    f"{self._who} exited with code {code} after {elapsed:.2f} s, before it was "
                    f"ready ({' '.join(self.argv)}); its last output lines:\n"
                    + self.tail(settle=1.0))
            if is_ready():
                return time.monotonic() - started
            if time.monotonic() >= deadline:
                raise ServerStartError(
                    f"{self._who} was not ready after {timeout:g} s (startup_timeout): "
                    f"waited for {awaited}; its last output lines:\n" + self.tail())
            # Waiting on the process doubles as the pause, so an exit is seen at once.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(min(interval, max(deadline - time.monotonic(), 0.001)))

    def _wait_gone(self, timeout: float) -> bool:
        """Wait until no process of the group is left; return whether that happened."""
        assert self._popen is not None
        deadline = time.monotonic() + timeout
        interval = 0.005
        while True:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(interval)
            if self._popen.poll() is not None and not procfs.group_members(self.pid):
                return True
            if time.monotonic() >= deadline:
                return False
            interval = min(interval * 1.5, 0.05)

    def _exiting_by_itself(self) -> bool:
        """Return whether the command has ended or has begun to end (nothing asked it yet).

        A server that crashes closes its sockets before its parent can reap it,
        so a client may see the crash first; the kernel's PF_EXITING flag is
        set before the sockets close, so this never misses such a crash.
        """
        assert self._popen is not None
        if self._popen.poll() is not None:
            return True
        found = procfs.stat(self.pid)
        return found is None or not found.alive or bool(found.flags & PF_EXITING)

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def stop(self, *, request_shutdown: Callable[[], str | None] | None,
             stop_signal: signal.Signals, timeout: float,
             before_signal: Callable[[], list[str]] | None = None) -> StopOutcome:
        """Stop the server: shutdown request, then ``stop_signal``, then KILL; reap the group.

        ``before_signal`` runs once before the first signal (it asks every
        measured process to save; it returns notes).  Idempotent: a second
        call returns the first call's outcome.
        """
        with self._lock:
            if self._outcome is None:
                try:
                    self._outcome = self._stop(request_shutdown, stop_signal, timeout,
                                               before_signal)
                finally:
                    if self._keeper is not None:  # the group is reaped: nothing left to guard
                        self._keeper.disarm()
            return self._outcome

    def _wait_exit(self, timeout: float) -> int | None:
        """Wait for a server that is ending by itself; return its exit code."""
        assert self._popen is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(max(timeout, 1.0))
        return self._popen.poll()

    def _stop(self, request_shutdown: Callable[[], str | None] | None,
              stop_signal: signal.Signals, timeout: float,
              before_signal: Callable[[], list[str]] | None = None) -> StopOutcome:
        if self._popen is None:
            return StopOutcome("never started", 0.0)
        started = time.monotonic()
        log = _StopLog()
        if self._exiting_by_itself():
            # Ended, or ending, before anything asked it to: a crash, never a stop.
            log.exited_early(self._wait_exit(timeout))
        steps: list[tuple[str, Callable[[], str | None]]] = []
        if request_shutdown is not None:
            steps.append(("shutdown_path", request_shutdown))
        steps.append((stop_signal.name, lambda: self._signal_group(stop_signal)))
        steps.append(("SIGKILL", lambda: self._signal_group(signal.SIGKILL)))
        step = self._escalate(steps, log, timeout, before_signal)
        if step == "already exited" and log.early is None:  # it ended between two looks
            log.exited_early(self._popen.poll())
        if self._pump is not None:
            self._pump.join(1.0)
        leftover = procfs.group_members(self.pid)
        if leftover:
            log.notes.append(f"processes {leftover} could not be ended")
        return StopOutcome(step, time.monotonic() - started, tuple(log.notes),
                           self._popen.poll() if log.early is None else log.early,
                           exited_early=log.early is not None)

    def _escalate(self, steps: list[tuple[str, Callable[[], str | None]]], log: _StopLog,
                  timeout: float, before_signal: Callable[[], list[str]] | None) -> str:
        """Take the stop steps in turn until the group is gone; return the step that did it.

        ``before_signal`` runs once, just before the first signal.
        """
        assert self._popen is not None
        step = "already exited"
        asked = False  # whether a step reached the server: after that, an exit is a stop
        for name, action in steps:
            if not self.alive():
                break
            if not asked and log.early is None and self._exiting_by_itself():
                log.exited_early(self._wait_exit(timeout))
                if not self.alive():
                    break
            if name != "shutdown_path" and before_signal is not None:
                log.notes.extend(before_signal())
                before_signal = None
            step = name
            refused = action()
            asked = asked or not refused
            if refused:
                log.notes.append(f"{name}: {refused}")
                # A server that refuses may be exiting by itself (it crashed while the
                # tests ran): see it end on its own before signalling over it.
                if self._wait_gone(min(timeout, REFUSED_GRACE)):
                    if log.early is None:
                        log.exited_early(self._popen.poll())
                    return "already exited"
                continue
            if self._wait_gone(timeout):
                break
            log.notes.append(f"{name}: the server was still running after {timeout:g} s")
        return step
