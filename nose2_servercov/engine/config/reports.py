"""The report kinds servercov writes: one table, read by everything that names a report.

Each row says what a ``[servercov] reports`` name means: how coverage.py's
public API writes it, which of coverage's own settings names its output place
(``[html] directory``, ``[xml] output``...), and whether that place is a
folder.  The config's validation of ``reports``, the check before a start that
each place can be written, the making of the server's settings (output places
made absolute against the rcfile's folder), the writing of the reports and the
``X report: place`` lines all read this table.

**Adding a report format is one row of** :data:`KINDS`: coverage's method
that writes it, the ``CoverageConfig`` attribute and the rcfile setting of its
output place.  Nothing else in the package spells report names.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:  # the config reads this table; it need not import coverage for that
    import coverage
    from coverage.config import CoverageConfig

TERMINAL = "terminal"  # the place of a report written to the run's output


@dataclass(frozen=True)
class ReportKind:
    """One report format: how coverage writes it and where it goes."""

    name: str
    # Write the report with coverage's public API; return the total coverage (percent).
    write: Callable[[coverage.Coverage, IO[str]], float]
    # The CoverageConfig attribute holding the output place ("" for the terminal)...
    place_attribute: str = ""
    # ...and how the rcfile names it, for messages: "[html] directory".
    setting: str = ""
    folder: bool = False  # the place is a folder, the report many files in it
    entry: str = ""  # in a folder, the file to open first (shown on the report line)

    def place(self, settings: CoverageConfig) -> Path | None:
        """Return the file or folder this report is written to, None for the terminal."""
        value = getattr(settings, self.place_attribute) if self.place_attribute else None
        return Path(value) if value else None

    def shown_place(self, settings: CoverageConfig) -> str:
        """Return where a user finds the report: a file, a folder's entry, or ``terminal``."""
        place = self.place(settings)
        if place is None:
            return TERMINAL
        return os.path.join(place, self.entry) if self.entry else str(place)


KINDS: dict[str, ReportKind] = {kind.name: kind for kind in (
    ReportKind("term", lambda cov, out: cov.report(file=out)),
    ReportKind("term-missing", lambda cov, out: cov.report(file=out, show_missing=True)),
    ReportKind("html", lambda cov, out: cov.html_report(), "html_dir", "[html] directory",
               folder=True, entry="index.html"),
    ReportKind("xml", lambda cov, out: cov.xml_report(), "xml_output", "[xml] output"),
    ReportKind("json", lambda cov, out: cov.json_report(), "json_output", "[json] output"),
    ReportKind("lcov", lambda cov, out: cov.lcov_report(), "lcov_output", "[lcov] output"),
)}
NAMES = tuple(KINDS)  # what [servercov] reports accepts, in the table's order
# The CoverageConfig attributes naming output places (made absolute for the server).
PLACE_ATTRIBUTES = tuple(kind.place_attribute for kind in KINDS.values()
                         if kind.place_attribute)


def place_line(name: str, place: str) -> str | None:
    """Return the ``html report: cover/index.html`` line for a written report, None if none.

    A report written to the terminal has no line: it is in the output already.
    """
    return None if place == TERMINAL else f"{name} report: {place}"
