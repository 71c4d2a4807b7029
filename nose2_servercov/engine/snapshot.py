"""Snapshots of a running server's coverage, taken without stopping or disturbing it.

Every measured server process runs a small thread (``inserver.py``) that
watches ``<control>/request``.  A snapshot writes a new generation number
there and a byte into each process's FIFO ``<control>/wake.<pid>``, where
that thread sleeps; each process then writes a dump of everything it has executed (what
it saved plus a copy of its collector's memory) as
``<data_file>.servercov-dump.pid<pid>``, renamed into place, and answers with
``<control>/ack.<pid>``.  Once every live measured process of the server's
process group has answered, copies of the dumps and of the data files of
processes that have ended are combined, and the reports written.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from coverage.config import CoverageConfig

from nose2_servercov.engine import data
from nose2_servercov.engine.process import group_members, proc_stat
from nose2_servercov.errors import ServeError
from nose2_servercov.protocol import parse_answer


def _is_generation(text: str) -> bool:
    """Return whether ``text`` is a well-formed request: a decimal generation number."""
    return text.isascii() and text.isdigit()


def _answered(control: Path, pid: int) -> int | None:
    """Return the last generation ``pid`` answered, None if it never registered.

    An answer that is not a decimal number (not written by servercov) counts
    as no answer yet, so the snapshot waits for a real one and fails at its
    deadline rather than reporting without that process.
    """
    try:
        text = (control / f"ack.{pid}").read_text().strip()
    except OSError:
        return None
    answer = parse_answer(text)
    return answer[0] if answer is not None else -1


def _next_generation(control: Path) -> int:
    """Return a generation above the last request and above every answer, or raise.

    A request the server processes would not obey (anything but a decimal
    number: servercov never writes one) is removed and reported, and the
    snapshot fails: what such a request was meant to do is unknown, and no
    report may be written as if all were well.
    """
    request = control / "request"
    try:
        text = request.read_text().strip()
    except FileNotFoundError:
        text = "0"
    if not _is_generation(text):
        request.unlink(missing_ok=True)
        raise ServeError(f"{request} held a malformed snapshot request {text[:40]!r} "
                         "(servercov writes a decimal number there): the server processes "
                         "ignored it and no report was written; it is removed, so the next "
                         "snapshot works")
    answers = [answer[0] for answer in (parse_answer(_read(path))
                                        for path in control.glob("ack.*")) if answer]
    return max([int(text), *answers]) + 1


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


_RESCAN_SECONDS = 0.25  # how often the whole group is listed again while waiting


def _wake(control: Path, pid: int) -> None:
    """Write a byte into ``pid``'s wake FIFO, so its snapshot thread looks now.

    No FIFO (it could not be made there): that process looks every 25 ms anyway.
    """
    try:
        fd = os.open(control / f"wake.{pid}", os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            os.write(fd, b"!")
    except OSError:
        pass  # full: it has been woken already
    finally:
        os.close(fd)


def _alive_in_group(pid: int, pgid: int) -> bool:
    fields = proc_stat(pid)
    return fields is not None and fields[0] not in (b"Z", b"X") and int(fields[2]) == pgid


def request_dumps(settings: CoverageConfig, pgid: int, *, timeout: float,
                  progress: Callable[[float, list[int]], None] | None = None,
                  ) -> tuple[list[int], list[int]]:
    """Ask every measured process of group ``pgid`` for a dump.

    Return the pids that answered and the live ones that never registered.

    A process registers (``ack.<pid>`` = 0) before it serves anything, so a
    process not registered has executed nothing to wait for (a shell, say).
    """
    control = data.control_dir(settings)
    request = control / "request"
    generation = _next_generation(control)
    temporary = control / "request.tmp"
    temporary.write_text(str(generation))
    os.replace(temporary, request)
    started = time.monotonic()
    next_progress = started + 1.0
    members: set[int] = set()
    next_scan = started  # list the group now, then every _RESCAN_SECONDS
    woken: set[int] = set()
    while True:
        scanned = time.monotonic() >= next_scan
        if scanned:  # a worker forked meanwhile must answer too; ended ones drop out
            members = set(group_members(pgid))
            next_scan = time.monotonic() + _RESCAN_SECONDS
        answers = {pid: _answered(control, pid) for pid in members}
        measured = {pid: answer for pid, answer in answers.items() if answer is not None}
        # One that ended before it answered left its data file at exit: that is combined.
        waiting = sorted(pid for pid, answer in measured.items()
                         if answer < generation and _alive_in_group(pid, pgid))
        for pid in set(waiting) - woken:
            _wake(control, pid)
            woken.add(pid)
        if not waiting:
            if scanned:
                return sorted(measured), sorted(members - set(measured))
            next_scan = 0.0  # list the group once more before answering
            continue
        elapsed = time.monotonic() - started
        if elapsed > timeout:
            raise ServeError(f"server processes {waiting} did not write their coverage data "
                             f"within {timeout:g} s (shutdown_timeout); no report was written")
        if progress is not None and time.monotonic() >= next_progress:
            progress(elapsed, waiting)
            next_progress += 1.0
        time.sleep(0.005)


def snapshot_files(settings: CoverageConfig, live: list[int]) -> list[str]:
    """Return the data files a snapshot combines: every dump, and the files of ended processes.

    A live process's own data file (written when it flushes, as for
    ``contexts = test``) is left alone: its dump holds it, and it may be
    half-written right now.
    """
    files = []
    for name in data.data_files(settings):
        pid = data.pid_of_data_file(name, settings)
        if data.DUMP_INFIX in name or pid is None or pid not in live:
            files.append(name)
    return files


def take_snapshot(settings: CoverageConfig, pgid: int, reports: tuple[str, ...], *,
                  timeout: float, out: IO[str], err: IO[str]) -> data.ReportResult:
    """Write ``reports`` from all the processes of group ``pgid`` have executed so far."""
    started = time.monotonic()
    progress = None
    if err.isatty():
        def progress(seconds: float, waiting: list[int]) -> None:
            err.write(f"\rservercov: waited {seconds:.0f} s of {timeout:g} for "
                      f"{len(waiting)} server process(es) to write their data")
            err.flush()
    try:
        live, silent = request_dumps(settings, pgid, timeout=timeout, progress=progress)
    finally:
        if err.isatty():
            err.write("\r\033[K")
    seconds = time.monotonic() - started
    result = data.combine_copies_and_report(settings, snapshot_files(settings, live), reports,
                                            out)
    err.write(f"servercov: snapshot of {len(live)} live server process"
              f"{'es' if len(live) != 1 else ''} ({seconds:.2f} s to answer); combined "
              f"{len(result.combined)} data files into {settings.data_file}\n")
    if silent:
        err.write(f"servercov: warning: server processes {silent} do not answer snapshots "
                  "(not Python, or forked without Python's fork hooks: uWSGI needs "
                  "py-call-uwsgi-fork-hooks and enable-threads); what they ran since they "
                  "started is missing\n")
    return result
