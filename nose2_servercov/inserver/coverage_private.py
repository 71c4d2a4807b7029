"""Hold every private name of coverage.py that servercov uses, checked against the running coverage.

coverage.py warns that its underscore names "might stop working at any
point".  servercov needs a few of them, for things coverage's public API
cannot do:

- **snapshots and autosave** (``dumps.py``) read what a process has measured
  without saving it: coverage's ``save()`` and ``get_data()`` flush the
  collector into the data file and clear it while requests are traced;
- **the orderly-exit marker** (``registration.py``) counts the files measured
  (-1 where it cannot: the run then reads the marker without the count);
- **the uWSGI master's data at fork** (``quirks.py``) asks whether coverage's
  fork patch stopped coverage in the worker;
- **the engine** (``engine/data.py``) turns off the "no data" warning of the
  instances it erases and combines with, and the second save at exit of a
  test runner whose data it has already saved.

They are used here and nowhere else, each behind a small function.
:func:`missing_names` is the one check of them against the running coverage,
and :func:`refusal` words, in one line, what a feature that needs a missing
name cannot do: its caller hands that line to ``report_problem`` and turns the
feature off, so a coverage release that moved a name gives neither a wrong
number nor a crash.  The engine's two settings are written as they are: a name
coverage no longer reads costs at most a warning or a save made twice.

This module imports only the standard library; coverage objects are handed in.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from coverage import Coverage, CoverageData

SNAPSHOTS = "snapshots and autosave"
MASTER_DATA = "the uWSGI master's data at fork"

# What each feature reads ("owner.name", owner: Coverage, its Collector or its
# CoverageData) and what refusing it means.
_NEEDED: dict[str, tuple[tuple[str, ...], str]] = {
    SNAPSHOTS: (("Coverage._collector", "Coverage._data", "Collector.data", "Collector.branch",
                 "Collector.core", "Collector.file_tracers", "Collector.disabled_plugins",
                 "Collector.mapped_file_dict", "Collector.cached_mapped_file",
                 "Collector.flush_data", "CoverageData._lock",
                 "CoverageData._current_context"),
                "snapshots and autosave of this process are off, their data would be wrong"),
    MASTER_DATA: (("Coverage._started",),
                  "what the uWSGI master ran before it forked this worker (the app's import) "
                  "cannot be kept, it would be missing from the report"),
}


def _version() -> str:
    coverage = sys.modules.get("coverage")
    return str(getattr(coverage, "__version__", "?"))


def missing_names(cov: Coverage) -> list[str]:
    """Return the private names servercov reads that the running coverage does not have.

    The names of a collector or data object not built yet are not checked:
    nothing is read from them until they are.
    """
    collector = getattr(cov, "_collector", None)
    owners: dict[str, Any] = {"Coverage": cov, "Collector": collector,
                              "CoverageData": getattr(cov, "_data", None)}
    missing = []
    for names, _ in _NEEDED.values():
        for name in names:
            owner, attribute = name.split(".")
            found = owners[owner]
            if name == "Collector.flush_data":  # a method: read from the class
                found = type(collector) if collector is not None else None
            if found is not None and not hasattr(found, attribute) and name not in missing:
                missing.append(name)
    return missing


def refusal(cov: Coverage, feature: str) -> str | None:
    """Return the one line refusing ``feature`` if the running coverage lacks a name it needs."""
    names, consequence = _NEEDED[feature]
    missing = [name for name in missing_names(cov) if name in names]
    if not missing:
        return None
    return (f"coverage {_version()} has no {', '.join(missing)}, which servercov reads for "
            f"{feature}: {consequence}")


# --- what the process measured, read without saving it -------------------------------------

def live_data(cov: Coverage) -> dict[str, Any] | None:
    """Return a copy of what the collector holds and has not flushed; None without a collector."""
    collector = cov._collector
    if collector is None:
        return None
    # dict.copy() and set.copy() are atomic under the GIL, while tracers add to them.
    data: dict[str, Any] = collector.data.copy()
    return {name: found.copy() for name, found in data.items() if found}


def flushed_data_file(cov: Coverage) -> str | None:
    """Return the data file this process's flushes write (``switch_context`` flushes)."""
    saved = cov._data
    return saved.data_filename() if saved is not None else None


def flushed_data_lock(cov: Coverage) -> AbstractContextManager[Any]:
    """Return the lock under which a flush of this process writes its data file."""
    assert cov._data is not None, "no data file: nothing was flushed"
    return cov._data._lock


def current_context(cov: Coverage) -> str | None:
    """Return the context the process records its lines under now (``contexts = test``)."""
    return cov._data._current_context if cov._data is not None else None


def measured_count(cov: Coverage) -> int:
    """Return how many lines (or arcs) the collector holds unflushed, a cheap change detector."""
    data: dict[str, Any] = cov._collector.data.copy() if cov._collector else {}
    return sum(len(found) for found in data.values())


def measured_file_count(cov: Coverage | None) -> int:
    """Return how many files the collector holds data of; -1 if it cannot be told."""
    collector = getattr(cov, "_collector", None)
    data = getattr(collector, "data", None)
    if data is None:
        return -1
    return sum(1 for found in data.copy().values() if found)


def is_started(cov: Coverage) -> bool:
    """Return whether ``cov`` measures now (coverage's fork patch stops it in a child)."""
    return cov._started


class UnknownCoverage(AttributeError):
    """coverage's collector is not built the way :func:`add_live_data` knows."""


class _CollectorCopy:
    """What ``Collector.flush_data`` reads, over a copy of the data, writing into ``dump``.

    coverage's own flush unpacks the C tracer's packed arcs (a layout that
    changed in 7.13.2: 20 bits a line before, 28 after) and maps file names;
    running it on this stand-in reuses that code on a copy, so the live
    collector is neither cleared nor changed.  Only pure lookups are taken
    from the real collector; anything else the flush asks for is unknown.
    """

    def __init__(self, collector: Any, live: dict[str, Any], dump: CoverageData) -> None:
        self.data = live
        self.branch = collector.branch
        self.core = collector.core
        self.covdata = dump
        self.tracers: list[Any] = []
        self.file_tracers = {name: tracer for name, tracer
                             in collector.file_tracers.copy().items() if name in live}
        self.disabled_plugins = set(collector.disabled_plugins)
        self.mapped_file_dict = collector.mapped_file_dict
        self.cached_mapped_file = collector.cached_mapped_file

    def _activity(self) -> bool:
        return True

    def _clear_data(self) -> None:
        pass  # the copy is thrown away; the live data stays

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise UnknownCoverage(name)


def add_live_data(cov: Coverage, live: dict[str, Any], dump: CoverageData) -> None:
    """Add ``live`` (a copy of the collector's data) to ``dump``, as coverage's flush would.

    Raise :class:`UnknownCoverage`, worded as the one line that refuses
    snapshots and autosave, if the flush asks for anything the copy lacks.
    """
    collector = cov._collector
    flush = getattr(type(collector), "flush_data", None)
    try:
        if flush is None:
            raise UnknownCoverage("flush_data")
        flush(_CollectorCopy(collector, live, dump))
    except UnknownCoverage as exc:
        raise UnknownCoverage(
            f"coverage {_version()} flushes its collector in a way servercov does "
            f"not know (it needs Collector.{exc.args[0]}): snapshots and autosave of this "
            "process are off, their data would be wrong") from None


# --- contexts under sys.monitoring ---------------------------------------------------------

def sysmon_contexts_refusal() -> str | None:
    """Return why ``contexts = test`` cannot use coverage's sys.monitoring core here, or None.

    coverage's sysmon core records a line (an arc, a branch) once per code
    location and returns ``sys.monitoring.DISABLE``; a context switch re-arms
    every location with ``sys.monitoring.restart_events()`` so the next test's
    lines are recorded again (app/contexts.py).  That holds only for the tracer
    built that way, recording into the collector's per-file sets (which its
    flushes keep in place, 7.10.4 on), so its shape is checked here: any other
    shape gets the C tracer, said on the start line, never a partial context.
    """
    monitoring = getattr(sys, "monitoring", None)
    if monitoring is None or not hasattr(monitoring, "restart_events"):
        return "sys.monitoring.restart_events needs Python 3.12+"
    try:
        from coverage import sysmon
    except ImportError:
        return f"coverage {_version()} has no coverage.sysmon"
    tracer = getattr(sysmon, "SysMonitor", None)
    needed = ("sysmon_py_start", "sysmon_line_lines", "sysmon_line_arcs")
    if (tracer is None or getattr(sysmon, "DISABLE", None) is not monitoring.DISABLE
            or not all(hasattr(tracer, name) for name in needed)):
        return (f"coverage {_version()}'s sys.monitoring core is not the one servercov "
                "re-arms at each context switch (SysMonitor returning DISABLE)")
    return None


def rearm_sysmon(cov: Coverage) -> None:
    """Make coverage's sysmon core record every location again, as if seen for the first time.

    Besides the events (``restart_events``), its branch mode keeps each code
    object's last line to record fall-through arcs: left from a frame of the
    previous test (one that raised, so never returned), it would join that
    test's line to this test's first, and put it under this test's context.
    """
    for tracer in list(getattr(cov._collector, "tracers", ())):
        for info in list(getattr(tracer, "code_infos", {}).values()):
            if getattr(info, "last_line", None) is not None:
                info.last_line = None
    monitoring: Any = getattr(sys, "monitoring", None)
    if monitoring is not None:
        monitoring.restart_events()


# --- the engine's two settings --------------------------------------------------------------

def silence_no_data_warning(cov: Coverage) -> None:
    """Keep ``cov`` from warning "No data was collected" (servercov says what is missing)."""
    cov._warn_no_data = False


def skip_save_at_exit(cov: Coverage) -> None:
    """Keep ``cov`` from saving again at exit, as coverage does for measured subprocesses."""
    cov._auto_save = False
