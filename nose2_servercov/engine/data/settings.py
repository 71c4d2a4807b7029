"""Coverage's settings as every server process must use them.

Everything goes through coverage.py's own config reader.  The only thing
added is what a multi-process server needs: one data file per process, the
fork and subprocess patches, and paths made absolute against the rcfile's
folder (the server may run elsewhere, and its processes must agree on where
the data and the reports go).
"""

from __future__ import annotations

import os
from pathlib import Path

from coverage.config import CoverageConfig, read_coverage_config
from coverage.exceptions import CoverageException

from nose2_servercov.engine.config import reports
from nose2_servercov.errors import DataError

# coverage.py's prefix for configuration handed over as serialized data.
CONFIG_DATA_PREFIX = ":data:"
SERVER_PATCHES = ("subprocess", "fork", "_exit", "execv")
# coverage's settings holding a path relative to the rcfile's folder.
FOLDER_RELATIVE = ("data_file", "debug_file", *reports.PLACE_ATTRIBUTES)


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

