"""The keeper: ends the server, and the test command, when the process that started them dies.

servercov starts one keeper beside every server, before the server itself,
as ``python -I -S keeper.py FD RUNNER_PID RUNNER_START SIGNAL GRACE``: a thin
Python (isolated, no ``site``: no coverage, no ``.pth``; this file imports
only the standard library, and loads ``nose2_servercov/procfs.py``, the one
reader of ``/proc``, by its path) in a session of its own, so neither a
Ctrl-C on the terminal nor a kill of the runner's process group reaches it.

It reads a pipe whose only writer is the runner (the write end is
close-on-exec: no server or test command holds it).  The runner writes what
to guard (``group PGID START``: the server's process group; ``pid PID
START``: the test command of ``servercov run``) and ``done`` once it has
stopped the server itself.  End of file without ``done`` (the runner died,
even by SIGKILL), or the runner's pid gone (a fork of the runner may hold
the pipe), means: send the stop signal to the server's group and SIGTERM to
the test command and its descendants, so the server saves its data, then
KILL whatever is left after ``GRACE`` seconds.  Every pid is checked against
its start time in ``/proc`` first, so a reused pid is never signalled.

A preexec_fn (unsafe with threads) or PR_SET_PDEATHSIG (it fires when the
*thread* that forked ends, and is cleared by a set-uid exec) could not give
this.  The keeper also holds descriptors the runner hands it (the run lock):
they stay held until the server is gone, so the next run waits for that
instead of erasing data a dying server is still writing.
"""

from __future__ import annotations

# The keeper starts beside every server, on the same cores: it imports only what
# costs nothing.  ``signal`` pulls in ``enum``; ``typing``, ``collections`` and
# ``subprocess`` cost 5-15 ms each: they are imported where used, in the runner,
# or once the runner has died.
import os
import select
import sys
import time

TYPE_CHECKING = False  # mypy takes it as true, as it does typing.TYPE_CHECKING
if TYPE_CHECKING:
    import subprocess
    from collections.abc import Sequence
    from typing import Any

    from nose2_servercov.procfs import ProcessStat

KILL_WAIT = 1.0  # seconds allowed for KILLed processes to vanish
POLL_SECONDS = 0.5  # how often the runner's pid is checked besides the pipe
# The one reader of /proc, at the package's top (this file is engine/server/keeper.py):
# run as ``python -I -S keeper.py``, the keeper cannot import the package, so it loads
# that one file by its path.  tests/engine/server/test_keeper_procfs.py checks the path.
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROCFS_PATH = os.path.join(PACKAGE_DIR, "procfs.py")
_procfs: list[Any] = []  # the module once loaded, or None if it could not be


def _load_procfs() -> Any:
    """Return :mod:`nose2_servercov.procfs`, None if it cannot be loaded.

    Loaded on first use, not at start, so that the keeper takes no CPU
    from the server starting beside it.  A
    keeper that cannot load it still works as on a system without
    ``/proc``: it never fails to start, and never guesses who is who.
    """
    if __name__ != "__main__":  # imported by the runner: the package is there
        from nose2_servercov import procfs

        return procfs
    try:
        import importlib.util

        spec = importlib.util.spec_from_file_location("servercov_procfs", PROCFS_PATH)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses looks its module up there
        spec.loader.exec_module(module)
        return module
    except Exception as exc:
        sys.modules.pop("servercov_procfs", None)
        sys.stderr.write(f"servercov: keeper: cannot load {PROCFS_PATH} ({exc!r}): it stops "
                         "the server's group if the runner dies, but cannot tell reused pids\n")
        return None


def _proc() -> Any:
    """Return the procfs module, loaded on first use; None if it cannot be."""
    if not _procfs:
        _procfs.append(_load_procfs())
    return _procfs[0]


def start_time(pid: int) -> int | None:
    """Return when ``pid`` started (clock ticks since boot), None if gone or unknown."""
    procfs = _proc()
    found: int | None = procfs.start_time(pid) if procfs is not None else None
    return found


def _is_gone(pid: int, started: int) -> bool:
    """Return whether ``pid`` is no longer the process that started at ``started``.

    Unknown (procfs could not be loaded) is not gone: then only the pipe tells.
    """
    return _proc() is not None and start_time(pid) != started


def _live_stats() -> dict[int, ProcessStat] | None:
    """Return every live process by pid, None without /proc."""
    procfs = _proc()
    found: dict[int, ProcessStat] | None = (procfs.all_processes() if procfs is not None
                                            else None)
    return found


def _group_is_ours(pgid: int, started: int, stats: dict[int, ProcessStat] | None) -> bool:
    """Return whether group ``pgid`` is still the one guarded (its leader not a reused pid)."""
    if stats is None:  # no /proc: the group exists, and that is all that can be known
        try:
            os.killpg(pgid, 0)
        except OSError:
            return False
        return True
    leader = stats.get(pgid)
    if leader is not None and leader.start != started:
        return False  # the pid was reused: this is another process's group
    return any(pgid == one.pgid for one in stats.values())


def _tree(pids: Sequence[tuple[int, int]], stats: dict[int, ProcessStat] | None) -> set[int]:
    """Return the guarded pids still alive (same start time) and all their descendants."""
    if stats is None:  # no /proc: no start times, no descendants; never guess
        return set()
    children: dict[int, list[int]] = {}
    for pid, one in stats.items():
        children.setdefault(one.ppid, []).append(pid)
    found: set[int] = set()
    todo = [pid for pid, started in pids if pid in stats and stats[pid].start == started]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


def _signal_all(groups: Sequence[tuple[int, int]], pids: Sequence[tuple[int, int]],
                group_signal: int, pid_signal: int) -> bool:
    """Signal what is still alive of ``groups`` and ``pids``; return whether anything was."""
    stats = _live_stats()
    alive = False
    for pgid, started in groups:
        if _group_is_ours(pgid, started, stats):
            alive = True
            try:
                os.killpg(pgid, group_signal)
            except OSError:
                pass
    for pid in _tree(pids, stats):
        alive = True
        try:
            os.kill(pid, pid_signal)
        except OSError:
            pass
    return alive


def _alive(groups: Sequence[tuple[int, int]], pids: Sequence[tuple[int, int]]) -> bool:
    stats = _live_stats()
    return any(_group_is_ours(g, s, stats) for g, s in groups) or bool(_tree(pids, stats))


def _wait_gone(groups: Sequence[tuple[int, int]], pids: Sequence[tuple[int, int]],
               timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(groups, pids):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def stop_guarded(groups: Sequence[tuple[int, int]], pids: Sequence[tuple[int, int]], *,
                 stop_signal: int, grace: float) -> tuple[bool, str]:
    """Stop the guarded groups and pids the orderly way, then by KILL.

    Return whether they are all gone, and how it went, in words.
    """
    started = time.monotonic()
    import signal  # only now: the run is over, time no longer counts

    if not _signal_all(groups, pids, stop_signal, signal.SIGTERM):
        return True, "nothing was left running"
    how = signal.Signals(stop_signal).name
    if not _wait_gone(groups, pids, grace):
        _signal_all(groups, pids, signal.SIGKILL, signal.SIGKILL)
        how = f"SIGKILL ({how} was not enough within {grace:g} s)"
        if not _wait_gone(groups, pids, KILL_WAIT):
            return False, f"some processes could not be ended, even by {how}"
    return True, f"stopped by {how} in {time.monotonic() - started:.2f} s"


def _parse(line: bytes) -> tuple[str, int, int] | None:
    words = line.split()
    if len(words) == 3 and words[0] in (b"group", b"pid") and all(w.isdigit() for w in words[1:]):
        return words[0].decode(), int(words[1]), int(words[2])
    return None


def keep(fd: int, runner: int, runner_started: int, stop_signal: int, grace: float) -> int:
    """Guard what the runner names on ``fd`` until it says ``done`` or dies."""
    # No signal needs ignoring: in a session of its own, without a terminal, the keeper
    # gets no Ctrl-C, SIGHUP or SIGTSTP of the runner's terminal.
    groups: list[tuple[int, int]] = []
    pids: list[tuple[int, int]] = []
    pending = b""
    while True:
        readable, _, _ = select.select([fd], [], [], POLL_SECONDS)
        if readable:
            chunk = os.read(fd, 4096)
            if not chunk:
                break  # the runner is gone, or closed the pipe without "done"
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.strip() == b"done":
                    return 0
                parsed = _parse(line)
                if parsed is not None:
                    (groups if parsed[0] == "group" else pids).append(parsed[1:])
        elif runner_started and _is_gone(runner, runner_started):
            break
    if not groups and not pids:
        return 0
    _, outcome = stop_guarded(groups, pids, stop_signal=stop_signal, grace=grace)
    what = " and ".join([f"the server (process group {g})" for g, _ in groups]
                        + [f"the test command (pid {p})" for p, _ in pids])
    try:
        sys.stderr.write(f"servercov: pid {runner}, which started {what}, is gone: "
                         f"{outcome}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    return 0


class Keeper:
    """The runner's side: start the keeper, name what it guards, disarm it after the stop."""

    def __init__(self, *, stop_signal: int, grace: float, hold: Sequence[int] = ()) -> None:
        self.stop_signal = stop_signal
        self.grace = grace
        self.hold = tuple(hold)
        self._popen: subprocess.Popen[bytes] | None = None
        self._write: int | None = None

    def start(self) -> None:
        """Start the keeper process; return at once (it needs no time to be ready)."""
        import subprocess

        runner = os.getpid()
        read, write = os.pipe()  # both close-on-exec: only the keeper gets the read end
        try:
            self._popen = subprocess.Popen(
                [sys.executable, "-I", "-S", os.path.abspath(__file__), str(read), str(runner),
                 str(start_time(runner) or 0), str(int(self.stop_signal)), f"{self.grace:g}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, cwd="/",
                pass_fds=(read, *self.hold), start_new_session=True)
        except OSError:
            os.close(write)
            raise
        finally:
            os.close(read)
        self._write = write

    def _send(self, line: str) -> None:
        if self._write is not None:
            try:
                os.write(self._write, line.encode() + b"\n")
            except OSError:
                pass  # the keeper is gone: nothing to tell it

    def guard_group(self, pgid: int) -> None:
        """Have the keeper stop process group ``pgid`` if this process dies."""
        self._send(f"group {pgid} {start_time(pgid) or 0}")

    def guard_pid(self, pid: int) -> None:
        """Have the keeper end ``pid`` and its descendants if this process dies."""
        started = start_time(pid)
        if started is not None:
            self._send(f"pid {pid} {started}")

    def disarm(self) -> None:
        """Tell the keeper everything is stopped, and reap it; idempotent."""
        if self._write is None:
            return
        self._send("done")
        os.close(self._write)
        self._write = None
        if self._popen is not None:
            import subprocess

            try:
                self._popen.wait(5)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait(5)


def main(argv: Sequence[str]) -> int:
    """Run the keeper: ``keeper.py FD RUNNER_PID RUNNER_START SIGNAL GRACE``."""
    fd, runner, runner_started, stop_signal = (int(word) for word in argv[:4])
    return keep(fd, runner, runner_started, stop_signal, float(argv[4]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
