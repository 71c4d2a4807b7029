"""Account for every measured server process: each one's data is on disk, or it is named.

Every server process that starts measuring registers itself in the run
folder (``SERVERCOV_RUN_DIR``) before it serves anything: ``proc.<pid>``
holds its pid, parent pid, command line and start time.  When it reaches an
orderly exit (atexit, ``os._exit``, an exec) it writes ``exit.<pid>``; a
problem it sees in itself (no coverage for its Python) goes to
``problem.<pid>``.  At the end of a run, after the stop, the session holds
these against the data files on disk (each per-process file name carries the
pid; snapshot and autosave dumps count as that process's data) and against
the answers to the save request sent just before the stop signal
(:mod:`nose2_servercov.engine.data.exchange`):

- a process with no readable data that had measured code, or that never
  reached its exit, lost its data: named with its command and the likely
  cause; one that answered, before the signal, that it had measured nothing
  lost nothing, whatever killed it then;
- a zero-byte data file, or one coverage cannot read, is named and never
  combined;
- every ``problem.<pid>`` is named.

Each of these fails the run unless ``lost_data = warn``.  The file names are
those of :mod:`nose2_servercov.protocol`, shared with the in-server code.
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

from nose2_servercov import procfs, protocol
from nose2_servercov.engine import data

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
        return procfs.is_alive(self.pid, started=self.start)


@dataclass(frozen=True)
class StopFacts:
    """What the session saw of the stop: who lost nothing, and the likely cause of a loss."""

    leader_pid: int | None = None  # the server command: its process group's leader
    leader_status: int | None = None  # Popen.returncode: negative = killed by that signal
    step: str = ""  # the stop step that ended the server: "shutdown_path", "SIGTERM", ...
    stop_signal: str = "SIGTERM"
    alive_at_stop: frozenset[int] = frozenset()  # registered and running when the stop began
    # The answers to the save request sent just before the stop signal: the process
    # wrote a dump of all it had run, or it had measured nothing (no dump to write).
    dumped_before_signal: frozenset[int] = frozenset()
    empty_before_signal: frozenset[int] = frozenset()


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
    dropped_labels: int = 0  # X-Servercov-Context labels the server processes refused
    label_example: str = ""  # the first one of them, shortened

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
    for path in run_dir.iterdir():
        pid = protocol.pid_of(path.name, protocol.registration_file)
        if pid is None:
            continue
        try:
            record = json.loads(path.read_text())
            found[int(record["pid"])] = Registration(
                int(record["pid"]), int(record["ppid"]), [str(w) for w in record["argv"]],
                None if record.get("start") is None else int(record["start"]),
                str(record.get("exe", "")))
        except (OSError, ValueError, KeyError, TypeError):
            found[pid] = Registration(pid, 0, [], None, "(unreadable registration)")
    return found


def _exit_marker(run_dir: Path, pid: int) -> dict[str, int] | None:
    try:
        marker = json.loads((run_dir / protocol.exit_file(pid)).read_text())
        return marker if isinstance(marker, dict) else {protocol.EXIT_MEASURED_KEY: -1}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {protocol.EXIT_MEASURED_KEY: -1}


def _problems(run_dir: Path) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for path in sorted(run_dir.iterdir()):
        pid = protocol.pid_of(path.name, protocol.problem_file)
        if pid is not None:
            with contextlib.suppress(OSError):
                found[pid] = [line for line in path.read_text(errors="replace").splitlines()
                              if line.strip()]
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


@dataclass
class _DataOnDisk:
    """The run's data files, by the pid in their names (0: a name without one)."""

    good: dict[int, list[str]] = field(default_factory=dict)  # coverage reads them
    bad: dict[int, list[tuple[str, str]]] = field(default_factory=dict)  # (file, why not)

    def whole_in_dump(self, pid: int, facts: StopFacts) -> bool:
        """Return whether ``pid``'s data is whole in the dump it wrote just before the signal."""
        return pid in facts.dumped_before_signal and any(
            protocol.DUMP_INFIX in name for name in self.good.get(pid, []))


def _read_data_files(settings: CoverageConfig, result: Accounting) -> _DataOnDisk:
    """Sort the data files on disk into those coverage reads and the others."""
    on_disk = _DataOnDisk()
    for name in data.data_files(settings):
        if name.endswith((".tmp", "-journal")):
            continue
        pid = data.pid_of_data_file(name, settings)
        reason, measured = read_data_file(name)
        if reason is not None:
            on_disk.bad.setdefault(pid or 0, []).append((name, reason))
            continue
        result.good_files.append(name)
        result.measured_any = result.measured_any or measured > 0
        if pid is not None:
            on_disk.good.setdefault(pid, []).append(name)
    return on_disk


def _set_aside(on_disk: _DataOnDisk, settings: CoverageConfig, facts: StopFacts) -> None:
    """Move the unusable files out of the combine's way.

    An empty file goes; an unreadable one is kept for a look, unless its
    process's data is whole in the dump it wrote on request before the signal.
    """
    for pid, files in on_disk.bad.items():
        for name, reason in files:
            with contextlib.suppress(OSError):
                if reason.startswith("is empty") or on_disk.whole_in_dump(pid, facts):
                    os.unlink(name)
                else:
                    os.replace(name, f"{settings.data_file}{protocol.UNREADABLE_INFIX}{pid}")


@dataclass(frozen=True)
class _Evidence:
    """What the end of the run shows of one registered process."""

    proc: Registration
    who: str  # "pid N (command)", for a message
    marker: dict[str, int] | None  # its exit marker; None: it never reached its exit
    files: list[str]  # its readable data files
    bad: str  # what is wrong with its other files, in words ("" when nothing is)
    whole_in_dump: bool  # its data is whole in the dump it wrote just before the signal
    cause: str  # the likely cause, should its data be missing


def _judge_with_data(seen: _Evidence, facts: StopFacts, result: Accounting) -> None:
    """Judge a process with readable data: only what is missing from it is named."""
    if seen.bad and seen.whole_in_dump:
        result.warnings.append(f"{seen.who}: {seen.bad}; not combined, its data written just "
                               "before the stop signal is")
    elif seen.bad:  # its other files are combined: only this file's part is gone
        result.losses.append(f"{seen.who}: {seen.bad}; not combined")
    elif (seen.marker is None and seen.proc.pid not in facts.dumped_before_signal
          and all(protocol.DUMP_INFIX in name for name in seen.files)
          and not _is_uwsgi_master(seen.proc, facts)):
        result.warnings.append(f"{seen.who} ended without saving: what it ran after its last "
                               f"autosave or snapshot is lost; {seen.cause}")


def _judge_without_data(seen: _Evidence, facts: StopFacts, result: Accounting) -> None:
    """Judge a process with no readable data: a loss, unless it had measured nothing."""
    if seen.bad:
        result.losses.append(f"{seen.who} lost its data: {seen.bad}; {seen.cause}")
    elif seen.marker is not None and seen.marker.get(protocol.EXIT_MEASURED_KEY) == 0:
        result.measured_nothing += 1
    elif seen.marker is None and seen.proc.pid in facts.empty_before_signal:
        result.measured_nothing += 1  # it said so just before the signal that killed it
    elif not (seen.marker is None and _is_uwsgi_master(seen.proc, facts)):
        result.losses.append(f"{seen.who} left no coverage data: {seen.cause}")


def _judge(pid: int, everyone: dict[int, Registration], on_disk: _DataOnDisk,
           run_dir: Path, facts: StopFacts, result: Accounting) -> None:
    """Add what is lost or doubtful of process ``pid``'s data to ``result``."""
    proc = everyone.get(pid)
    who = f"pid {pid} ({proc.command})" if proc else f"pid {pid}"
    bad = "; ".join(f"its data file {name} {reason}" for name, reason in on_disk.bad.get(pid, []))
    if proc is None:  # a file of a process that never registered
        result.losses.append(f"{who}: {bad}; not combined")
        return
    marker = _exit_marker(run_dir, pid)
    seen = _Evidence(proc, who, marker, on_disk.good.get(pid, []), bad,
                     on_disk.whole_in_dump(pid, facts),
                     _likely_cause(proc, marker, everyone, run_dir, facts))
    if seen.files:
        _judge_with_data(seen, facts, result)
    else:
        _judge_without_data(seen, facts, result)


def account(run_dir: Path, settings: CoverageConfig, facts: StopFacts) -> Accounting:
    """Hold the registered processes against the data files on disk; see the module doc."""
    result = Accounting()
    everyone = registrations(run_dir)
    result.registered = len(everyone)
    on_disk = _read_data_files(settings, result)
    _set_aside(on_disk, settings, facts)
    for pid in sorted(set(everyone) | set(on_disk.bad)):
        _judge(pid, everyone, on_disk, run_dir, facts, result)
    for name, why in data.foreign_data_files(settings):
        result.warnings.append(f"{name} {why}: never combined (named like this run's data "
                               "files, in a folder another user can write to)")
    result.dropped_labels, result.label_example = dropped_labels(run_dir)
    if result.dropped_labels:
        result.warnings.append(dropped_labels_line(result.dropped_labels, result.label_example))
    for pid, messages in _problems(run_dir).items():
        for message in messages:
            text = message.removeprefix(f"servercov: pid {pid}: ")
            result.not_measured.append(f"pid {pid}: {text}")
            result.losses.append(f"pid {pid}: {text}")
    return result


def dropped_labels(run_dir: Path) -> tuple[int, str]:
    """Return how many test labels the server processes dropped, and the first one seen."""
    total, example = 0, ""
    for path in sorted(run_dir.iterdir()):
        if protocol.pid_of(path.name, protocol.labels_file) is None:
            continue
        try:
            record = json.loads(path.read_text())
            count, text = (record[key] for key in protocol.LABEL_COUNT_KEYS)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if isinstance(count, int) and count > 0:
            total += count
            example = example or str(text)
    return total, example


def dropped_labels_line(count: int, example: str) -> str:
    """Return the line that says how many test labels the server dropped, with one shown."""
    shown = ascii(example)  # escaped: it may hold markup or control characters
    return (f"{count} {protocol.CONTEXT_HEADER} label{'s were' if count > 1 else ' was'} "
            f"dropped (over {protocol.LABEL_MAX_CHARS} characters, not printable, or holding "
            f"one of {protocol.LABEL_FORBIDDEN}): those requests were served and measured "
            f"under the context {protocol.DROPPED_LABEL}; the first began {shown}")
