"""Combine coverage data files for remote collection, over the engine's data module.

The agent combines what its server processes dumped into the one data file a
``/snapshot`` answers with; the collector combines every agent's file (and the
test runner's) and writes the reports.  Both need a ``Coverage`` object made
from the run's serialized settings, and the engine's combine-and-report; each
is reached through one function here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import coverage
from coverage.config import CoverageConfig

from nose2_servercov.engine import data


def coverage_of(settings: CoverageConfig, *, data_file: str | None = None) -> coverage.Coverage:
    """Return a ``Coverage`` of ``settings`` that writes ``data_file`` (else their own)."""
    return data.coverage_for(settings, data_file=data_file)


def combine_and_report(settings: CoverageConfig, files: list[str], reports: tuple[str, ...],
                       out: IO[str]) -> data.ReportResult:
    """Combine ``files`` into the data file of ``settings``; write ``reports`` to ``out``."""
    return data.combine_files_and_report(coverage_of(settings), files, files, reports, out)


def combined_bytes(settings: CoverageConfig, files: Sequence[str]) -> bytes:
    """Return one data file that combines copies of ``files``; a valid empty one if none.

    Copies: the processes that wrote ``files`` still run, and a file the
    final stop has combined meanwhile is simply gone.
    """
    folder = os.path.dirname(settings.data_file)
    with tempfile.TemporaryDirectory(prefix="servercov-control-", dir=folder) as scratch:
        copies = []
        for number, name in enumerate(files):
            with contextlib.suppress(FileNotFoundError):
                copies.append(shutil.copyfile(name, os.path.join(scratch, f"c.{number}")))
        combined = os.path.join(scratch, "combined")
        cov = coverage_of(settings, data_file=combined)
        if copies:
            cov.combine(copies, strict=True)
        cov.get_data().write()  # an empty but valid data file when nothing ran yet
        cov.get_data().close(force=True)
        return Path(combined).read_bytes()
