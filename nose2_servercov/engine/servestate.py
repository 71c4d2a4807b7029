"""The state file of a running ``servercov serve``: how snapshot and stop find it.

``serve`` writes ``.servercov/serve.json`` in the rcfile's folder (folder
mode 0700, file 0600: what it holds is the user's alone).  A serve that
crashed leaves it behind; its pid may since belong to another process, so
the file also holds the serve's start time from ``/proc``, and a state whose
process is gone or is not the same process is stale: never obeyed, replaced
by the next serve.  Before ``stop`` signals (or ``snapshot`` trusts) the pid
a state names, the process must also prove to be a ``servercov serve`` for
this very rcfile: its command line (``servercov serve``, ``python -m
nose2_servercov serve``, with its ``--rcfile`` resolved against its working
folder) is read from ``/proc``, so a forged or garbled state file can never
get another process signalled.

``snapshot`` asks the serve to take the snapshot: it writes
``snapshot.<pid>.request`` beside the state and sends the serve SIGUSR1; the
serve, which has coverage imported and its processes at hand, takes it and
writes ``snapshot.<pid>.answer`` (exit status and output).  A new process
importing coverage and combining would cost about 0.25 s of CPU, taken from
the server it measures under load.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from nose2_servercov import procfs, protocol, safefiles
from nose2_servercov.engine.config import find_rcfile
from nose2_servercov.errors import ServeError, ServercovError

STATE_FILE = Path(protocol.CONTROL_FOLDER) / protocol.SERVE_STATE_FILE


def state_path(rcfile: Path) -> Path:
    """Return where the serve of ``rcfile`` keeps its state."""
    return rcfile.parent / STATE_FILE


@dataclass(frozen=True)
class ServeState:
    """What snapshot and stop need to know about a running serve."""

    serve_pid: int
    serve_started: int
    server_pgid: int
    url: str
    rcfile: str
    data_file: str

    @classmethod
    def of_this_process(cls, *, server_pgid: int, url: str, rcfile: Path,
                        data_file: str) -> ServeState:
        """Return the state of the serve running in this process."""
        pid = os.getpid()
        return cls(pid, procfs.start_time(pid) or 0, server_pgid, url, str(rcfile), data_file)

    def is_running(self) -> bool:
        """Return whether the serve that wrote this state still runs (same pid, same start)."""
        return procfs.start_time(self.serve_pid) == self.serve_started

    def is_serve_for(self, rcfile: Path) -> bool:
        """Return whether the same process still runs, and is a serve of ``rcfile``."""
        return self.is_running() and serves_rcfile(self.serve_pid, rcfile)

    def write(self, path: Path) -> None:
        """Write the state for this user only, atomically."""
        private_folder(path.parent)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        safefiles.replace_atomically(path, json.dumps(asdict(self)), temporary)


def private_folder(folder: Path, *, make: bool = True) -> None:
    """Make ``folder`` (``.servercov``) this user's own, or refuse it in one line.

    ``make=False``: only refuse an existing one that is a symlink or another user's.
    """
    try:
        if make:
            safefiles.private_folder(folder)
        else:
            safefiles.check_private_folder(folder)
    except safefiles.UnsafePlace as exc:
        raise ServeError(f"{exc}: refused, since servercov writes its state there and "
                         f"whoever controls it could redirect it; remove it ({folder.name} "
                         "is made anew, mode 0700), or run from a folder of your own") from None


def read_state(path: Path) -> ServeState | None:
    """Return the state in ``path``, None if there is none or it cannot be understood."""
    try:
        return ServeState(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _serve_arguments(argv: list[str]) -> list[str] | None:
    """Return the arguments after ``serve`` if ``argv`` runs ``servercov serve``, else None."""
    for index, word in enumerate(argv):
        path = Path(word)
        is_servercov = (path.name == "servercov"
                        or (path.name == "__main__.py" and path.parent.name == "nose2_servercov")
                        or (word in ("nose2_servercov", "nose2_servercov.__main__")
                            and index > 0 and argv[index - 1] == "-m"))
        if is_servercov:
            rest = argv[index + 1:]
            return rest[1:] if rest[:1] == ["serve"] else None
    return None


def _rcfile_argument(arguments: list[str]) -> str | None:
    """Return the ``--rcfile`` value among serve's arguments (argparse takes prefixes too)."""
    for index, word in enumerate(arguments):
        name, equals, value = word.partition("=")
        if len(name) > 3 and "--rcfile".startswith(name):
            if equals:
                return value
            return arguments[index + 1] if index + 1 < len(arguments) else None
    return None


def is_serve(pid: int) -> bool:
    """Return whether ``pid`` runs ``servercov serve`` (of any rcfile), from its command line."""
    argv = procfs.command_line(pid)
    return bool(argv) and _serve_arguments(argv or []) is not None


def rcfile_served_by(pid: int) -> Path | None:
    """Return the rcfile that the ``servercov serve`` ``pid`` serves, None if none is found.

    Its ``--rcfile`` (or the rcfile search) is resolved against its working folder.
    """
    argv = procfs.command_line(pid)
    arguments = _serve_arguments(argv) if argv else None
    cwd = procfs.working_directory(pid)
    if arguments is None or cwd is None:
        return None
    try:
        return find_rcfile(_rcfile_argument(arguments), start=Path(cwd))
    except (OSError, ServercovError):
        return None


def serves_rcfile(pid: int, rcfile: Path) -> bool:
    """Return whether ``pid`` runs ``servercov serve`` for ``rcfile`` (from its command line)."""
    return rcfile_served_by(pid) == rcfile.resolve()


def running_serve(rcfile: Path, *, command: str = "snapshot") -> ServeState:
    """Return the state of the serve running for ``rcfile``; raise if none runs.

    A state whose pid runs but is not a ``servercov serve`` for ``rcfile`` is
    refused, naming the process, so that nothing signals it.  When that
    process is the serve of another rcfile of the folder, the refusal names
    that rcfile and the ``servercov COMMAND --rcfile`` to run: its state is
    never to be removed, which would strand a live serve.
    """
    path = state_path(rcfile)
    state = read_state(path)
    if state is None or not state.is_running():
        raise ServeError(f"no servercov serve is running for {rcfile}")
    if not serves_rcfile(state.serve_pid, rcfile):
        if is_serve(state.serve_pid):
            raise ServeError(another_serve(state.serve_pid, rcfile, command))
        argv = " ".join(procfs.command_line(state.serve_pid) or ["?"])[:160]
        raise ServeError(f"{path} names pid {state.serve_pid} ({argv}), which is not a "
                         f"servercov serve for {rcfile}: nothing was signalled; remove the file "
                         "if no serve runs")
    return state


def another_serve(pid: int, rcfile: Path, command: str) -> str:
    """Say which rcfile the serve ``pid`` runs for, and ``servercov COMMAND --rcfile`` for it."""
    other = rcfile_served_by(pid)
    where = f"the servercov serve running in {rcfile.parent} (pid {pid})"
    if other is None:
        argv = " ".join(procfs.command_line(pid) or ["?"])[:160]
        return (f"{where} is not for {rcfile} ({argv}): nothing was signalled; pass the "
                f"--rcfile it was started with: servercov {command} --rcfile FILE")
    try:
        shown = other.relative_to(Path.cwd().resolve())
    except ValueError:
        shown = other
    return (f"{where} is for {other}, not for {rcfile}: nothing was signalled; to reach it, "
            f"pass its rcfile: servercov {command} --rcfile {shown}")


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold a lock on the state file: one snapshot (or the final report) at a time."""
    with open(path, "rb") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@dataclass(frozen=True)
class SnapshotAnswer:
    """What the serve did with a snapshot request: the command's exit status and output.

    ``reported``: for ``servercov stop``, whether the final reports were written.
    """

    status: int
    stdout: str
    stderr: str
    reported: bool = True


def ask_for_snapshot(state: ServeState, rcfile: Path, *, timeout: float) -> SnapshotAnswer:
    """Have the running serve of ``rcfile`` take a snapshot; return its answer, or raise."""
    request, answer = _leave_request(rcfile, protocol.snapshot_request_file,
                                     protocol.snapshot_answer_file)
    started = time.monotonic()
    next_progress = started + 1.0
    try:
        os.kill(state.serve_pid, signal.SIGUSR1)
        while True:
            try:
                return SnapshotAnswer(**json.loads(answer.read_text()))
            except (OSError, ValueError, TypeError):
                pass  # not written yet (it is renamed into place whole)
            if not state.is_running():
                raise ServeError(f"the serve (pid {state.serve_pid}) ended before it took the "
                                 "snapshot: see its output")
            waited = time.monotonic() - started
            if waited > timeout:
                raise ServeError(f"the serve (pid {state.serve_pid}) did not answer the snapshot "
                                 f"request within {timeout:g} s")
            if sys.stderr.isatty() and time.monotonic() >= next_progress:
                sys.stderr.write(f"\rservercov: waited {waited:.0f} s for the snapshot")
                sys.stderr.flush()
                next_progress += 1.0
            time.sleep(0.005)
    finally:
        if sys.stderr.isatty() and time.monotonic() >= started + 1.0:
            sys.stderr.write("\r\033[K")
        request.unlink(missing_ok=True)
        answer.unlink(missing_ok=True)


def answer_snapshot_requests(path: Path, take: Callable[[], SnapshotAnswer]) -> None:
    """Answer every pending snapshot request beside the state file ``path`` (in the serve).

    One snapshot answers all the requests that are waiting: they asked for
    the data of "now", and it is newer than each of them.  A request whose
    asker is gone is dropped; a file that is not a request is left alone.
    """
    waiting = _waiting_askers(path, protocol.snapshot_request_file)
    if not waiting:
        return
    answer = take()
    for entry, pid in waiting:
        _write_answer(entry.with_name(protocol.snapshot_answer_file(pid)), answer)
        entry.unlink(missing_ok=True)


def _write_answer(destination: Path, answer: SnapshotAnswer) -> None:
    """Write ``answer`` for this user only, renamed into place whole."""
    safefiles.replace_atomically(destination, json.dumps(asdict(answer)))


def ask_for_final_total(rcfile: Path) -> Path:
    """Ask the serve of ``rcfile`` (before it is signalled) for its final lines; return where.

    The serve answers in the returned file after its final report, so that
    ``servercov stop`` prints the total as the serve does.
    """
    return _leave_request(rcfile, protocol.stop_request_file, protocol.stop_answer_file)[1]


def take_final_total(answer: Path) -> SnapshotAnswer | None:
    """Return the serve's final lines from ``answer`` and remove it; None if none came."""
    try:
        found = SnapshotAnswer(**json.loads(answer.read_text()))
    except (OSError, ValueError, TypeError):
        found = None
    answer.unlink(missing_ok=True)
    answer.with_name(protocol.stop_request_file(os.getpid())).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        answer.parent.rmdir()  # the serve left the folder to this answer
    return found


def answer_stop_requests(path: Path, answer: SnapshotAnswer) -> None:
    """Give every waiting ``servercov stop`` the serve's final lines (in the serve)."""
    with contextlib.suppress(OSError):
        for entry, pid in _waiting_askers(path, protocol.stop_request_file):
            _write_answer(entry.with_name(protocol.stop_answer_file(pid)), answer)
            entry.unlink(missing_ok=True)


def _leave_request(rcfile: Path, request_file: Callable[[int], str],
                   answer_file: Callable[[int], str]) -> tuple[Path, Path]:
    """Leave this process's request beside the serve's state; return it and its answer's path.

    The request holds this process's start time, so the serve answers only
    an asker that still runs (a pid reused since is not it).
    """
    folder = state_path(rcfile).parent
    try:
        safefiles.check_private_folder(folder)
    except safefiles.UnsafePlace as exc:
        raise ServeError(f"{exc}: refused, since whoever controls it could redirect what "
                         "servercov writes there; no serve was asked") from None
    request = folder / request_file(os.getpid())
    answer = folder / answer_file(os.getpid())
    answer.unlink(missing_ok=True)
    safefiles.replace_atomically(request, f"{procfs.start_time(os.getpid()) or 0}\n")
    return request, answer


def _waiting_askers(path: Path, request_file: Callable[[int], str]) -> list[tuple[Path, int]]:
    """Return the requests beside the state ``path`` whose askers still wait, with their pids."""
    found = [(entry, pid) for entry in path.parent.iterdir()
             if (pid := protocol.pid_of(entry.name, request_file)) is not None]
    return [(entry, pid) for entry, pid in found if _asker_waits(entry, pid)]


def _asker_waits(request: Path, pid: int) -> bool:
    """Return whether the process that wrote ``request`` still runs; drop the request if not."""
    try:
        started = int(request.read_text().strip() or 0)
    except (OSError, ValueError):
        started = -1
    if started and procfs.start_time(pid) == started:
        return True
    request.unlink(missing_ok=True)
    return False
