"""Coverage data of a measured server: its settings, stale-data cleanup, combine, reports.

Everything here goes through coverage.py's own API.  The only thing added is
the settings handed to the server processes: the user's rcfile, with the
changes a multi-process server needs (one data file per process, fork and
subprocess patches, paths made absolute against the rcfile's folder).
"""

from __future__ import annotations

import contextlib
import copy
import glob
import io
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import coverage
from coverage.config import CoverageConfig, read_coverage_config
from coverage.exceptions import CoverageException, NoDataError
from coverage.results import should_fail_under

from nose2_servercov.errors import DataError
from nose2_servercov.inserver import coverage_private

# coverage.py's prefix for configuration handed over as serialized data.
CONFIG_DATA_PREFIX = ":data:"
SERVER_PATCHES = ("subprocess", "fork", "_exit", "execv")
# Where the server processes' snapshot dumps and the snapshot control files go;
# the same names are spelled in inserver.py, which cannot import this module.
CONTROL_FOLDER = ".servercov"
DUMP_INFIX = ".servercov-dump.pid"
# The pid in a per-process data file's name: "...pid<pid>..." in coverage's
# parallel suffix ("<host>.pid<pid>.X<letters>x") and in our dumps; coverage
# before 7.12 or so wrote "<host>.<pid>.X<letters>x" (7.10.4 has no "pid").
_PID_IN_NAME = re.compile(r"\.pid(\d+)(?:\.|$)")
_PID_IN_OLD_SUFFIX = re.compile(r"\.(\d+)\.X[A-Za-z]+x$")


def pid_of_data_file(name: str, settings: CoverageConfig) -> int | None:
    """Return the pid of the process that wrote the per-process data file ``name``."""
    suffix = name[len(settings.data_file):]
    match = _PID_IN_NAME.search(suffix) or _PID_IN_OLD_SUFFIX.search(suffix)
    return int(match[1]) if match else None


_CONTROL_FILES = ("request", "request.tmp", "ack.*", "wake.*", "dump.*.tmp")
_FOLDER_RELATIVE = ("data_file", "debug_file", "html_dir", "xml_output", "json_output",
                    "lcov_output")


def server_settings(rcfile: Path) -> CoverageConfig:
    """Return coverage's settings from ``rcfile`` as every server process must use them."""
    folder = rcfile.parent
    warnings: list[str] = []
    try:
        config = read_coverage_config(config_file=str(rcfile), warn=warnings.append)
    except CoverageException as exc:
        raise DataError(f"{rcfile}: coverage cannot read it: {exc}") from None
    for name in _FOLDER_RELATIVE:
        value = getattr(config, name)
        if value and "\0" in value:
            raise DataError(f"{rcfile}: coverage's {name} setting holds a NUL byte")
        if value:
            setattr(config, name, str(folder / os.path.expanduser(value)))
    config.source = [str(folder / src) if (folder / src).is_dir() else src
                     for src in config.source or ()] or None
    # One data file per process: without it the last process to save overwrites the others.
    config.parallel = True
    config.patch = sorted(set(config.patch) | set(SERVER_PATCHES))
    return config


def _coverage(settings: CoverageConfig, *, data_file: str | None = None) -> coverage.Coverage:
    if data_file:  # Coverage(data_file=...) is ignored with serialized settings
        settings = copy.copy(settings)
        settings.data_file = data_file
    cov = coverage.Coverage(config_file=CONFIG_DATA_PREFIX + settings.serialize())
    coverage_private.silence_no_data_warning(cov)
    return cov


def data_files(settings: CoverageConfig) -> list[str]:
    """Return the per-process data files now on disk for ``settings``."""
    return sorted(glob.glob(glob.escape(settings.data_file) + ".*"))


def control_dir(settings: CoverageConfig) -> Path:
    """Return the folder of snapshot requests and answers, beside the data file."""
    return Path(settings.data_file).parent / CONTROL_FOLDER


def erase_control_files(settings: CoverageConfig) -> None:
    """Delete snapshot requests, answers and half-written dumps; the folder too if empty."""
    folder = control_dir(settings)
    for pattern in _CONTROL_FILES:
        for path in folder.glob(pattern):
            path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        folder.rmdir()  # only when empty: `servercov serve` keeps its state file there


def erase_stale_data(settings: CoverageConfig) -> None:
    """Delete the data files of earlier runs, so they never leak into this run's report.

    The server processes' dumps are ``<data_file>.*`` files too, so coverage's
    own erase takes them; the snapshot control files go with them.
    """
    try:
        _coverage(settings).erase()  # the first use of the settings: plugins load here
    except ImportError as exc:
        raise DataError(f"coverage cannot load a [run] plugins module: {exc}") from None
    except CoverageException as exc:
        raise DataError(f"coverage cannot use the settings: {exc}") from None
    except OSError as exc:
        raise DataError(f"cannot erase the data files of earlier runs "
                        f"({settings.data_file}.*): {exc.strerror or exc}: "
                        f"{exc.filename or ''}") from None
    erase_control_files(settings)


def save_runner_data(settings: CoverageConfig) -> bool:
    """Save the test runner's own coverage data, if it is measured into the same data file.

    Under ``coverage run -m nose2`` the runner saves at exit, after our combine,
    so its lines would miss the report and its file would be left behind.
    Saving it now puts both in one report.
    """
    runner = coverage.Coverage.current()
    if runner is None or runner.config.data_file is None:
        return False
    if os.path.abspath(runner.config.data_file) != os.path.abspath(settings.data_file):
        return False
    # Parallel or not: saved now, its file is combined with the server's (a
    # non-parallel runner saving at exit would overwrite the combined file).
    runner.stop()
    runner.save()
    coverage_private.skip_save_at_exit(runner)  # as for measured subprocesses: no second save
    # `coverage run` saves once more when the command ends, after our combine took its
    # file: that would leave an empty stray data file (or, non-parallel, rewrite ours).
    runner.save = lambda: None  # type: ignore[method-assign]
    return True


@dataclass
class ReportResult:
    """What combining and reporting produced."""

    combined: list[str]
    total: float | None = None
    outputs: list[tuple[str, str]] = field(default_factory=list)
    fail_under: float | None = None
    failed_under: bool = False
    lost_data: bool = False  # a measured process lost data (named on servercov: lines)


def _output_place(name: str, config: CoverageConfig) -> str:
    places = {"html": os.path.join(config.html_dir, "index.html"), "xml": config.xml_output,
              "json": config.json_output, "lcov": config.lcov_output}
    return places.get(name, "terminal")


def _report_call(name: str, cov: coverage.Coverage, out: IO[str]) -> Callable[[], float]:
    calls: dict[str, Callable[[], float]] = {
        "term": lambda: cov.report(file=out),
        "term-missing": lambda: cov.report(file=out, show_missing=True),
        "html": cov.html_report,
        "xml": cov.xml_report,
        "json": cov.json_report,
        "lcov": cov.lcov_report,
    }
    return calls[name]


def combine_and_report(settings: CoverageConfig, reports: tuple[str, ...],
                       out: IO[str], files: list[str] | None = None) -> ReportResult:
    """Combine the per-process data files into the data file, then write ``reports``.

    ``files``: exactly these (the ones the accounting found readable), else
    every ``<data_file>.*`` file on disk.
    """
    if files is None:
        files = data_files(settings)
    if not files:
        raise DataError(f"no server process saved coverage data (expected "
                        f"{settings.data_file}.* files); check [run] source and the server's "
                        "output above")
    cov = _coverage(settings)
    if os.path.exists(settings.data_file):
        # Written during this run (erase_stale_data removed the earlier one before
        # the server started): the test process's own data, saved into the same
        # file by pytest-cov, `coverage run -m pytest` or `coverage run -m nose2`.
        # Combined with the server's, never overwritten.
        try:
            cov.load()
        except CoverageException as exc:
            raise DataError(f"{settings.data_file}: the test process's coverage data cannot "
                            f"be read: {exc}") from None
    return _combine_and_report(cov, files, list(files), reports, out)


def combine_copies_and_report(settings: CoverageConfig, files: list[str],
                              reports: tuple[str, ...], out: IO[str]) -> ReportResult:
    """Combine copies of ``files`` into the data file, then write ``reports``.

    For data of processes that still run: the originals are neither read in
    place nor deleted, and the data file is replaced in one rename, so a
    reader never meets it half-written.
    """
    folder = os.path.dirname(settings.data_file)
    with tempfile.TemporaryDirectory(prefix="servercov-snapshot-", dir=folder) as scratch:
        copies = []
        for number, name in enumerate(files):
            with contextlib.suppress(FileNotFoundError):  # combined by the final stop meanwhile
                copies.append(shutil.copyfile(name, os.path.join(scratch, f"copy.{number}")))
        if not copies:
            raise DataError(f"no server process has written coverage data yet (expected "
                            f"{settings.data_file}.* files)")
        combined = os.path.join(scratch, "combined")
        cov = _coverage(settings, data_file=combined)
        result = _combine_and_report(cov, files, copies, reports, out)
        cov.get_data().close(force=True)  # before the rename
        os.replace(combined, settings.data_file)
    return result


def _combine_and_report(cov: coverage.Coverage, files: list[str], data_paths: list[str] | None,
                        reports: tuple[str, ...], out: IO[str]) -> ReportResult:
    try:
        cov.combine(data_paths, strict=True)
        cov.save()
        result = ReportResult(combined=files)
        unwritten = []
        for name in reports or ("term",):
            try:
                total = _report_call(name, cov, out)()
            except OSError as exc:  # a report place that cannot be written: keep the data
                unwritten.append(f"the {name} report could not be written to "
                                 f"{_output_place(name, cov.config)} "
                                 f"({exc.strerror or exc}: {exc.filename or ''})")
                continue
            result.total = total
            result.outputs.append((name, _output_place(name, cov.config)))
        if unwritten:
            raise DataError("; ".join(unwritten) + f"; the combined data is kept in "
                            f"{cov.config.data_file}")
        if result.total is None:
            result.total = cov.report(file=io.StringIO())
    except NoDataError as exc:
        raise DataError(f"coverage has nothing to report: {exc}") from None
    except CoverageException as exc:
        hint = ""
        if "branch" in str(exc):
            hint = (" (the test process and the server must agree on [run] branch: give "
                    "pytest-cov the same rcfile with --cov-config)")
        raise DataError(f"coverage failed to combine or report: {exc}{hint}") from None
    config = cov.config
    if config.fail_under:
        result.fail_under = config.fail_under
        result.failed_under = should_fail_under(result.total, config.fail_under, config.precision)
    return result
