"""Coverage's settings as every server process must use them.

Everything goes through coverage.py's own config reader.  The only thing
added is what a multi-process server needs: one data file per process, the
fork and subprocess patches, and paths made absolute against the rcfile's
folder (the server may run elsewhere, and its processes must agree on where
the data and the reports go).
"""

from __future__ import annotations

import configparser
import os
import shlex
import textwrap
from collections.abc import Sequence
from pathlib import Path

from coverage.config import CoverageConfig, HandyConfigParser, read_coverage_config
from coverage.exceptions import CoverageException
from coverage.tomlconfig import TomlConfigParser

from nose2_servercov.engine.config import reports
from nose2_servercov.errors import DataError

# coverage.py's prefix for configuration handed over as serialized data.
CONFIG_DATA_PREFIX = ":data:"
SERVER_PATCHES = ("subprocess", "fork", "_exit", "execv")
# coverage's settings holding a path relative to the rcfile's folder.
FOLDER_RELATIVE = ("data_file", "debug_file", *reports.PLACE_ATTRIBUTES)
TITLE_WIDTH = 100  # a browser tab shows less; the page's heading shows it all


def server_settings(rcfile: Path) -> CoverageConfig:
    """Return coverage's settings from ``rcfile`` as every server process must use them."""
    folder = rcfile.parent
    warnings: list[str] = []
    try:
        config = read_coverage_config(config_file=str(rcfile), warn=warnings.append)
    except CoverageException as exc:
        raise DataError(f"{rcfile}: coverage cannot read it: {exc}") from None
    for name in FOLDER_RELATIVE:
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


def title_the_html_report(settings: CoverageConfig, rcfile: Path,
                          command: Sequence[str]) -> None:
    """Title the html report after the server's command, unless the rcfile gives a title.

    coverage's default title, "Coverage report", does not say that this is a
    server's coverage, nor of which server.  Whether the user set ``[html]
    title`` is read from the rcfile itself, as coverage reads it, never
    guessed from the value: a user may well have chosen coverage's default.
    """
    if not command or _rcfile_sets_html_title(rcfile):
        return
    words = [os.path.basename(command[0]), *command[1:]]  # python, not /long/venv/bin/python
    settings.html_title = textwrap.shorten(f"Server coverage: {shlex.join(words)}",
                                           width=TITLE_WIDTH, placeholder=" …")


def _rcfile_sets_html_title(rcfile: Path) -> bool:
    """Return whether ``rcfile`` has ``[html] title``, read with coverage's own parsers."""
    parser = (TomlConfigParser(our_file=True) if rcfile.suffix == ".toml"
              else HandyConfigParser(our_file=True))
    try:
        parser.read(str(rcfile))  # one name, as coverage passes it
        return parser.has_option("html", "title")
    except (OSError, configparser.Error, CoverageException, ValueError):
        return False  # coverage read it a moment ago; if it cannot now, its default stays
