"""The files of a measured server's data on disk: their names, the pids in them, the control folder.

Storage and naming only, as coverage's ``sqldata.py`` sits under its
``data.py``: which ``<data_file>.*`` files exist, which process wrote each,
where the save exchange's files live and how they are erased, how files are
copied aside to be combined while their processes still run.  What is done
with the data (combine, report) is :mod:`.data`'s job.  The names that cross
process boundaries come from :mod:`nose2_servercov.protocol`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from coverage.config import CoverageConfig

from nose2_servercov import safefiles
from nose2_servercov.protocol import CONTROL_FOLDER, DUMP_INFIX, EXCHANGE_PATTERNS

__all__ = ["CONTROL_FOLDER", "DUMP_INFIX", "control_dir", "copy_data_files",
           "data_files", "erase_control_files", "foreign_data_files", "pid_of_data_file"]

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


def data_files(settings: CoverageConfig) -> list[str]:
    """Return the per-process data files now on disk for ``settings``: this user's own only.

    In a folder other users can write, another user's file (or a symlink)
    named like ours is never combined: :func:`foreign_data_files` names them.
    """
    return [name for name in _named_like_ours(settings) if safefiles.foreign(name) is None]


def foreign_data_files(settings: CoverageConfig) -> list[tuple[str, str]]:
    """Return the files named like our per-process data files that are not ours, and why."""
    found = ((name, safefiles.foreign(name)) for name in _named_like_ours(settings))
    return [(name, why) for name, why in found if why is not None]


def _named_like_ours(settings: CoverageConfig) -> list[str]:
    return sorted(glob.glob(glob.escape(settings.data_file) + ".*"))


def control_dir(settings: CoverageConfig) -> Path:
    """Return the folder of snapshot requests and answers, beside the data file."""
    return Path(settings.data_file).parent / CONTROL_FOLDER


def erase_control_files(settings: CoverageConfig) -> None:
    """Delete snapshot requests, answers and half-written dumps; the folder too if empty."""
    folder = control_dir(settings)
    for pattern in EXCHANGE_PATTERNS:
        for path in folder.glob(pattern):
            path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        folder.rmdir()  # only when empty: `servercov serve` keeps its state file there


def copy_data_files(files: Iterable[str], folder: str) -> list[str]:
    """Copy ``files`` into ``folder`` (numbered); return the copies' paths.

    For data of processes that still run: the copies are combined, never the
    originals, which their processes may rewrite.  A file that is gone meanwhile
    (combined by the final stop) is left out.
    """
    copies = []
    for number, name in enumerate(files):
        with contextlib.suppress(FileNotFoundError):
            copies.append(shutil.copyfile(name, os.path.join(folder, f"copy.{number}")))
    return copies
