"""Account for every measured server process: each one's data is on disk, or it is named.

Every server process that starts measuring registers itself in the run
folder (``SERVERCOV_RUN_DIR``) before it serves anything: ``proc.<pid>``
holds its pid, parent pid, command line and start time.  When it reaches an
orderly exit (atexit, ``os._exit``, an exec) it writes ``exit.<pid>``; a
problem it sees in itself (no coverage for its Python) goes to
``problem.<pid>``.  At the end of a run, after the stop, the session holds
these against the data files on disk (each per-process file name carries the
pid; snapshot and autosave dumps count as that process's data):

- a process with no readable data that had measured code, or that never
  reached its exit, lost its data: named with its command and the likely cause;
- a zero-byte data file, or one coverage cannot read, is named and never
  combined;
- every ``problem.<pid>`` is named.

Each of these fails the run unless ``lost_data = warn``.  The file names are
shared with ``inserver.py``, which cannot import this module.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
from dataclasses import dataclass, field
from pathlib import Path

from coverage import CoverageData
from coverage.config import CoverageConfig

from nose2_servercov.engine import data
from nose2_servercov.engine.process import proc_stat
from nose2_servercov.protocol import parse_answer

COMMAND_WIDTH = 100


@dataclass(frozen=True)
class Registration:
    """What a measured process wrote of itself when it started measuring."""

    pid: int
    ppid: int
    argv: list[str]
    start: int | None
    exe: str

    @property
    def command(self) -> str:
        """Return the command line, shortened for one line of output."""
        text = shlex.join(self.argv) if self.argv else self.exe
        return text if len(text) <= COMMAND_WIDTH else text[:COMMAND_WIDTH - 3] + "..."

    def is_alive(self) -> bool:
        """Return whether this very process (same pid, same start time) still runs."""
        fields = proc_stat(self.pid)
        if fields is None or fields[0] in (b"Z", b"X"):
            return False
        return self.start is None or int(fields[19]) == self.start


@dataclass(frozen=True)
class StopFacts:
    """What the session saw of the stop, for telling the likely cause of a loss."""

    leader_pid: int | None = None
    leader_status: int | None = None  # Popen.returncode: negative = killed by that signal
    step: str = ""
    stop_signal: str = "SIGTERM"
    alive_at_stop: frozenset[int] = frozenset()
    saved_before_signal: frozenset[int] = frozenset()


@dataclass
class Accounting:
    """The outcome: the files to combine, and every loss and problem, one line each."""

    good_files: list[str] = field(default_factory=list)
    losses: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    registered: int = 0
    measured_nothing: int = 0
    measured_any: bool = False  # whether a readable file holds any measured source file
    not_measured: list[str] = field(default_factory=list)

    @property
    def lost_data(self) -> bool:
        """Return whether a measured process lost data (the run fails unless warned)."""
        return bool(self.losses)


def make_run_dir(parent: Path | None = None) -> Path:
    """Create this run's private folder (mode 0700)."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix="servercov-run-", dir=parent))


def remove_run_dir(run_dir: Path) -> None:
    """Delete the run folder and what the server processes wrote there."""
    import shutil

    shutil.rmtree(run_dir, ignore_errors=True)


def registrations(run_dir: Path) -> dict[int, Registration]:
    """Return the registered processes by pid."""
    found: dict[int, Registration] = {}
    for path in run_dir.glob("proc.*"):
        if not path.name[5:].isdigit():
            continue
        try:
            record = json.loads(path.read_text())
            found[int(record["pid"])] = Registration(
                int(record["pid"]), int(record["ppid"]), [str(w) for w in record["argv"]],
                None if record.get("start") is None else int(record["start"]),
                str(record.get("exe", "")))
        except (OSError, ValueError, KeyError, TypeError):
            pid = int(path.name[5:])
            found[pid] = Registration(pid, 0, [], None, "(unreadable registration)")
    return found


def _exit_marker(run_dir: Path, pid: int) -> dict[str, int] | None:
    try:
        marker = json.loads((run_dir / f"exit.{pid}").read_text())
        return marker if isinstance(marker, dict) else {"measured": -1}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"measured": -1}


def _problems(run_dir: Path) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for path in sorted(run_dir.glob("problem.*")):
        with contextlib.suppress(OSError, ValueError):
            found[int(path.name[8:])] = [line for line in path.read_text(errors="replace")
                                         .splitlines() if line.strip()]
    return found


def read_data_file(path: str) -> tuple[str | None, int]:
    """Return why coverage cannot use ``path`` (None if it can), and how many files it holds."""
    try:
        if os.path.getsize(path) == 0:
            return "is empty (0 bytes): the process was killed while saving", 0
        found = CoverageData(path, no_disk=False)
        found.read()
        count = len(found.measured_files())
        found.close(force=True)
    except Exception as exc:  # sqlite3 errors, DataError, ...: what coverage would meet
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"cannot be read by coverage ({first})", 0
    return None, count


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _likely_cause(proc: Registration, marker: dict[str, int] | None,
                  everyone: dict[int, Registration], run_dir: Path, facts: StopFacts) -> str:
    parent = everyone.get(proc.ppid)
    parent_stopped = parent is not None and _exit_marker(run_dir, parent.pid) is not None
    if marker is not None:
        if parent_stopped and proc.pid in facts.alive_at_stop:
            return (f"killed while saving, likely by its parent (pid {proc.ppid}) as that one "
                    "stopped: a supervisor that kills its children on SIGTERM, as Django's "
                    "autoreloader does")
        return "it reached its exit, but was killed while saving (see the server's output)"
    if proc.pid == facts.leader_pid and facts.leader_status is not None:
        status = facts.leader_status
        if status < 0:
            by = _signal_name(-status)
            if by == "SIGKILL" and facts.step == "SIGKILL":
                return (f"killed by servercov's SIGKILL: it was still running "
                        f"shutdown_timeout seconds after {facts.stop_signal}")
            return f"killed by {by} before it could save"
        return (f"exited with code {status} without saving (os._exit or a crash "
                "inside the interpreter)")
    if proc.pid not in facts.alive_at_stop:
        return ("ended while the tests ran without saving: killed by SIGKILL (or by its "
                "parent), or ended through os._exit without coverage's patch")
    if parent_stopped:
        return (f"likely killed by its parent (pid {proc.ppid}) as that one stopped: "
                "a supervisor that SIGKILLs its children on SIGTERM, as Django's "
                "autoreloader does")
    if facts.step == "SIGKILL":
        return (f"killed by servercov's SIGKILL: it was still running shutdown_timeout "
                f"seconds after {facts.stop_signal}")
    return "killed by SIGKILL (or by its parent) before it could save"


def _is_uwsgi_master(proc: Registration, facts: StopFacts) -> bool:
    """The uWSGI master never runs Python's atexit; what it ran is in its workers' data."""
    return (os.path.basename(proc.exe).startswith("uwsgi") and proc.pid == facts.leader_pid
            and facts.leader_status is not None and facts.leader_status >= 0)


def account(run_dir: Path, settings: CoverageConfig, facts: StopFacts) -> Accounting:
    """Hold the registered processes against the data files on disk; see the module doc."""
    result = Accounting()
    everyone = registrations(run_dir)
    result.registered = len(everyone)
    good_by_pid: dict[int, list[str]] = {}
    bad_by_pid: dict[int, list[str]] = {}
    for name in data.data_files(settings):
        if name.endswith((".tmp", "-journal")):
            continue
        pid = data.pid_of_data_file(name, settings)
        reason, measured = read_data_file(name)
        if reason is None:
            result.good_files.append(name)
            result.measured_any = result.measured_any or measured > 0
            if pid is not None:
                good_by_pid.setdefault(pid, []).append(name)
            continue
        bad_by_pid.setdefault(pid or 0, []).append(f"its data file {name} {reason}")
        # Out of the combine's way: an empty file goes, an unreadable one is kept for
        # a look, unless the process's data is whole in the dump it wrote on request.
        with contextlib.suppress(OSError):
            if reason.startswith("is empty") or pid in facts.saved_before_signal:
                os.unlink(name)
            else:
                os.replace(name, f"{settings.data_file}.servercov-unreadable.pid{pid or 0}")
    for pid in sorted(set(everyone) | set(bad_by_pid)):
        proc = everyone.get(pid)
        who = f"pid {pid} ({proc.command})" if proc else f"pid {pid}"
        bad = "; ".join(bad_by_pid.get(pid, []))
        files = good_by_pid.get(pid, [])
        if proc is None:  # a file of a process that never registered
            result.losses.append(f"{who}: {bad}; not combined")
            continue
        marker = _exit_marker(run_dir, pid)
        cause = _likely_cause(proc, marker, everyone, run_dir, facts)
        if files:
            if bad and pid in facts.saved_before_signal:
                # Its dump, written on request just before the stop signal, holds what it ran.
                result.warnings.append(f"{who}: {bad}; not combined, its data written just "
                                       "before the stop signal is")
            elif bad:  # its other files are combined: only this file's part is gone
                result.losses.append(f"{who}: {bad}; not combined")
            elif marker is None and pid not in facts.saved_before_signal and \
                    all(data.DUMP_INFIX in name for name in files) and \
                    not _is_uwsgi_master(proc, facts):
                result.warnings.append(f"{who} ended without saving: what it ran after its "
                                       f"last autosave or snapshot is lost; {cause}")
            continue
        if bad:
            result.losses.append(f"{who} lost its data: {bad}; {cause}")
            continue
        if marker is not None and marker.get("measured") == 0:
            result.measured_nothing += 1
            continue
        if marker is None and _is_uwsgi_master(proc, facts):
            continue
        result.losses.append(f"{who} left no coverage data: {cause}")
    for pid, messages in _problems(run_dir).items():
        for message in messages:
            text = message.removeprefix(f"servercov: pid {pid}: ")
            result.not_measured.append(f"pid {pid}: {text}")
            result.losses.append(f"pid {pid}: {text}")
    return result


SAVE_WAIT = 5.0  # seconds, at most, for every process to save before the stop signal


def ask_to_save(control: Path, pgid: int, *, timeout: float) -> tuple[frozenset[int], list[str]]:
    """Ask every measured process of group ``pgid`` to write a dump of its data; wait.

    Some parents kill their children when signalled (Django's autoreloader
    SIGKILLs its serving child ~3 ms after SIGTERM), so the data is put on
    disk before any signal.  The channel is the snapshot one (``request``,
    ``ack.<pid>``, see ``inserver.py``).  Return the pids that answered and
    a note for those that did not.
    """
    import time

    from nose2_servercov.engine.process import group_members

    request = control / "request"
    try:
        generation = int(request.read_text()) + 1
    except (OSError, ValueError):
        generation = 1
    try:
        (control / "request.tmp").write_text(str(generation))
        os.replace(control / "request.tmp", request)
    except OSError as exc:
        return frozenset(), [f"could not ask the server processes to save first: {exc}"]
    deadline = time.monotonic() + min(timeout, SAVE_WAIT)
    answered: set[int] = set()
    while True:
        waiting = []
        for pid in group_members(pgid):
            try:
                answer = parse_answer((control / f"ack.{pid}").read_text() or "0")
            except OSError:
                answer = None
            if answer is None:
                continue  # not a process that answers (not measured, or not yet)
            ack = answer[0]
            if ack >= generation:
                answered.add(pid)
            else:
                waiting.append(pid)
        if not waiting:
            return frozenset(answered), []
        if time.monotonic() >= deadline:
            return frozenset(answered), [
                f"server processes {waiting} did not save their data within "
                f"{min(timeout, SAVE_WAIT):g} s of being asked, before the stop signal"]
        time.sleep(0.005)
