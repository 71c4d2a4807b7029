"""Snapshots of a running server's coverage, taken without stopping or disturbing it.

A snapshot asks every measured process of the server's group for a dump
through the save exchange (:mod:`nose2_servercov.engine.data.exchange`): each
writes everything it has executed (what it saved plus a copy of its
collector's memory) as ``<data_file>.servercov-dump.pid<pid>``, renamed into
place, and answers.  Once every live measured process has answered, copies
of the dumps and of the data files of processes that have ended are
combined, and the reports written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import IO

from coverage.config import CoverageConfig

from nose2_servercov import protocol
from nose2_servercov.engine import data
from nose2_servercov.engine.data import exchange
from nose2_servercov.errors import ServeError


def dump_all(settings: CoverageConfig, pgids: Sequence[int], *, timeout: float,
             progress: Callable[[float, list[int]], None] | None = None) -> exchange.Answers:
    """Have every measured process of the groups ``pgids`` dump its data; raise if one does not.

    The groups: the server's and every measured section's, one after the
    other.  A process that never registered for the exchange has executed
    nothing to wait for (a shell, say): it is among the answers' ``unregistered``.
    """
    answers = exchange.Answers()
    for pgid in pgids:
        answers = answers.merged(exchange.ask_for_dumps(
            data.control_dir(settings), pgid, timeout=timeout, progress=progress))
    if answers.late:
        raise ServeError(f"server processes {sorted(answers.late)} did not write their "
                         f"coverage data within {timeout:g} s (shutdown_timeout); no report "
                         "was written")
    return answers


def snapshot_files(settings: CoverageConfig, live: list[int]) -> list[str]:
    """Return the data files a snapshot combines: every dump, and the files of ended processes.

    A live process's own data file (written when it flushes, as for
    ``contexts = test``) is left alone: its dump holds it, and it may be
    half-written right now.
    """
    files = []
    for name in data.data_files(settings):
        pid = data.pid_of_data_file(name, settings)
        if protocol.DUMP_INFIX in name or pid is None or pid not in live:
            files.append(name)
    return files


def take_snapshot(settings: CoverageConfig, pgids: Sequence[int], reports: tuple[str, ...], *,
                  timeout: float, out: IO[str], err: IO[str]) -> data.ReportResult:
    """Write ``reports`` from all the processes of the groups ``pgids`` have executed so far."""
    started = time.monotonic()
    progress = None
    if err.isatty():
        def progress(seconds: float, waiting: list[int]) -> None:
            err.write(f"\rservercov: waited {seconds:.0f} s of {timeout:g} for "
                      f"{len(waiting)} server process(es) to write their data")
            err.flush()
    try:
        answers = dump_all(settings, pgids, timeout=timeout, progress=progress)
    finally:
        if err.isatty():
            err.write("\r\033[K")
    seconds = time.monotonic() - started
    live, silent = answers.answered, sorted(answers.unregistered)
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
