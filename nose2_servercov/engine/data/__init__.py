"""Coverage data of a measured server: erase the stale data, save the runner's, combine, report.

The high-level operations live here, all through coverage.py's own API; the
folder holds the rest of what concerns the data:

- :mod:`.settings`: coverage's settings as the server processes use them;
- :mod:`.datafiles`: the data files' names, the pids in them, the control folder;
- :mod:`.exchange`: the one request/answer with the server processes (dump now);
- :mod:`.snapshot`: a report of what every process has run so far, nothing stopped;
- :mod:`.accounting`: every measured process's data on disk, or its loss named.

The names other modules use from ``settings`` and ``datafiles`` are re-exported
here, so ``data.control_dir`` and the like keep working.  The public entry
points of the remote agent and collector are :func:`coverage_for` and
:func:`combine_files_and_report`.  The report kinds are a table of the config
(:mod:`nose2_servercov.engine.config.reports`).
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO

import coverage
from coverage.config import CoverageConfig
from coverage.exceptions import CoverageException, NoDataError
from coverage.results import should_fail_under

from nose2_servercov import safefiles
from nose2_servercov.engine.config.reports import KINDS, place_line
from nose2_servercov.engine.data.datafiles import (
    CONTROL_FOLDER,
    DUMP_INFIX,
    control_dir,
    copy_data_files,
    data_files,
    erase_control_files,
    foreign_data_files,
    pid_of_data_file,
)
from nose2_servercov.engine.data.settings import CONFIG_DATA_PREFIX, SERVER_PATCHES, server_settings
from nose2_servercov.errors import DataError
from nose2_servercov.inserver import coverage_private

__all__ = [
    "CONFIG_DATA_PREFIX", "CONTROL_FOLDER", "DUMP_INFIX", "SERVER_PATCHES", "ReportResult",
    "combine_and_report", "combine_copies_and_report", "combine_files_and_report",
    "control_dir", "copy_data_files", "coverage_for", "data_files", "erase_control_files",
    "erase_stale_data", "foreign_data_files", "pid_of_data_file", "save_runner_data",
    "server_settings",
]


def coverage_for(settings: CoverageConfig, data_file: str | None = None) -> coverage.Coverage:
    """Return a Coverage object over ``settings``, to erase, combine and report with.

    ``data_file``: another data file than the settings' own (a scratch file
    the combined data is written to before it replaces the real one).
    """
    if data_file:  # Coverage(data_file=...) is ignored with serialized settings
        settings = copy.copy(settings)
        settings.data_file = data_file
    cov = coverage.Coverage(config_file=CONFIG_DATA_PREFIX + settings.serialize())
    coverage_private.silence_no_data_warning(cov)
    return cov


def erase_stale_data(settings: CoverageConfig) -> None:
    """Delete the data files of earlier runs, so they never leak into this run's report.

    The server processes' dumps are ``<data_file>.*`` files too, so coverage's
    own erase takes them; the snapshot control files go with them.
    """
    try:
        coverage_for(settings).erase()  # the first use of the settings: plugins load here
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
    outputs: list[tuple[str, str]] = field(default_factory=list)  # (kind, shown place)
    fail_under: float | None = None
    failed_under: bool = False
    lost_data: bool = False  # a measured process lost data (named on servercov: lines)

    def place_lines(self) -> list[str]:
        """Return the ``html report: cover/index.html`` lines of the reports written to files."""
        lines = (place_line(name, place) for name, place in self.outputs)
        return [line for line in lines if line is not None]


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
    not_ours = safefiles.foreign(settings.data_file)
    if not_ours:  # planted since the erase, in a folder others can write
        raise DataError(f"[run] data_file {settings.data_file} {not_ours}: refused, never read "
                        "nor written through; remove it and run again")
    # Combined in a private scratch folder beside it, then renamed over the data
    # file: whatever another user puts there meanwhile is replaced, never written through.
    with tempfile.TemporaryDirectory(prefix="servercov-combine-",
                                     dir=os.path.dirname(settings.data_file)) as scratch:
        combined = os.path.join(scratch, "combined")
        cov = coverage_for(settings, data_file=combined)
        try:
            if _copy_own(settings.data_file, combined):
                # Written during this run (erase_stale_data removed the earlier one
                # before the server started): the test process's own data, saved into
                # the same file by pytest-cov, `coverage run -m pytest` or `coverage run
                # -m nose2`.  Combined with the server's, never overwritten.
                _load_test_data(cov, settings.data_file)
            return combine_files_and_report(cov, files, list(files), reports, out)
        except DataError as exc:  # name the data file, not the scratch copy
            raise DataError(str(exc).replace(combined, settings.data_file)) from None
        finally:
            with contextlib.suppress(Exception):  # never hide why the combine failed
                cov.get_data().close(force=True)
            if os.path.exists(combined):  # the data kept, also when a report failed
                os.replace(combined, settings.data_file)


def _copy_own(path: str, copy: str) -> bool:
    """Copy ``path`` to the new file ``copy`` if it exists; never read through a link."""
    try:
        fd = safefiles.open_own(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    except (OSError, safefiles.UnsafePlace) as exc:
        raise DataError(f"[run] data_file {path}: refused, never read through: {exc}") from None
    with os.fdopen(fd, "rb") as source, open(copy, "xb") as target:
        shutil.copyfileobj(source, target)
    return True


def _load_test_data(cov: coverage.Coverage, data_file: str) -> None:
    try:
        cov.load()
    except CoverageException as exc:
        raise DataError(f"{data_file}: the test process's coverage data cannot "
                        f"be read: {exc}") from None


def combine_copies_and_report(settings: CoverageConfig, files: list[str],
                              reports: tuple[str, ...], out: IO[str]) -> ReportResult:
    """Combine copies of ``files`` into the data file, then write ``reports``.

    For data of processes that still run: the originals are neither read in
    place nor deleted, and the data file is replaced in one rename, so a
    reader never meets it half-written.
    """
    folder = os.path.dirname(settings.data_file)
    with tempfile.TemporaryDirectory(prefix="servercov-snapshot-", dir=folder) as scratch:
        copies = copy_data_files(files, scratch)
        if not copies:
            raise DataError(f"no server process has written coverage data yet (expected "
                            f"{settings.data_file}.* files)")
        combined = os.path.join(scratch, "combined")
        cov = coverage_for(settings, data_file=combined)
        result = combine_files_and_report(cov, files, copies, reports, out)
        cov.get_data().close(force=True)  # before the rename
        os.replace(combined, settings.data_file)
    return result


def combined_copies(settings: CoverageConfig, files: Sequence[str]) -> bytes:
    """Return one data file combining copies of ``files``; a valid empty one if there are none.

    The remote agent's ``/snapshot`` answer: copies, since the processes that
    wrote ``files`` still run; a file the final stop has combined meanwhile is
    simply gone.
    """
    folder = os.path.dirname(settings.data_file)
    with tempfile.TemporaryDirectory(prefix="servercov-control-", dir=folder) as scratch:
        copies = copy_data_files(files, scratch)
        combined = os.path.join(scratch, "combined")
        cov = coverage_for(settings, data_file=combined)
        if copies:
            cov.combine(copies, strict=True)
        cov.get_data().write()  # an empty but valid data file when nothing ran yet
        cov.get_data().close(force=True)
        with open(combined, "rb") as f:
            return f.read()


def combine_files_and_report(cov: coverage.Coverage, files: list[str],
                             data_paths: list[str] | None, reports: tuple[str, ...],
                             out: IO[str]) -> ReportResult:
    """Combine ``data_paths`` into ``cov``'s data file, save it, then write ``reports``.

    ``files`` are the data files the result names as combined (``data_paths``
    may be copies of them); no ``reports`` means the terminal report.  Raise
    DataError when coverage cannot combine or report, or a report's place
    cannot be written (the combined data is kept then).
    """
    try:
        cov.combine(data_paths, strict=True)
        cov.save()
        result = ReportResult(combined=files)
        write_reports(cov, reports or ("term",), out, result)
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


def write_reports(cov: coverage.Coverage, names: tuple[str, ...], out: IO[str],
                  result: ReportResult) -> None:
    """Write the reports ``names`` of ``cov``'s data; note their places and total in ``result``.

    A report whose place cannot be written does not stop the others; all such
    places are named in one DataError at the end.
    """
    unwritten = []
    for name in names:
        kind = KINDS[name]
        place = kind.shown_place(cov.config)
        try:
            result.total = kind.write(cov, out)
        except (OSError, CoverageException) as exc:
            problem = unwritable_place(exc)
            if problem is None:
                raise
            # A report place that cannot be written: keep the data, name the place.
            unwritten.append(f"the {name} report could not be written to {place} "
                             f"({problem.strerror or problem}: {problem.filename or ''})")
            continue
        result.outputs.append((name, place))
    if unwritten:
        raise DataError("; ".join(unwritten) + f"; the combined data is kept in "
                        f"{cov.config.data_file}")



def unwritable_place(exc: BaseException) -> OSError | None:
    """Return the OSError of a report place that cannot be written, None for other failures.

    coverage raises the OSError itself for a file it cannot write, but wraps
    it in a CoverageException for a folder it cannot create (``Couldn't
    create directory ...``, coverage 7.18's ``misc.ensure_dir``).
    """
    if isinstance(exc, OSError):
        return exc
    return exc.__cause__ if isinstance(exc.__cause__, OSError) else None

# The names the remote agent and collector called before coverage_for and
# combine_files_and_report were public; they go once remote/ calls the public ones.
