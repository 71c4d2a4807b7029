"""Map the paths that agents measured onto this checkout, and say how when ``[paths]`` does not.

A container measures ``/app/webapp/views.py``; the report here must name
``webapp/views.py``.  coverage's own ``[paths]`` remapping does it, with the
rcfile's entries made relative to the rcfile's folder.  A collected file that
maps to no local file is named in one line with the ``[paths]`` entry that
would map it, never reported as a silent 0 %.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Sequence
from pathlib import Path

from coverage import CoverageData
from coverage.config import CoverageConfig
from coverage.files import PathAliases

from nose2_servercov.engine import data
from nose2_servercov.engine.config import ServerConfig

# Folders never searched for a file of the same name: tools', not the checkout's.
_SKIP_DIRS = {".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__", ".tox",
              ".nox", "site-packages", "htmlcov"}


def collector_settings(config: ServerConfig) -> CoverageConfig:
    """Return coverage's settings for combining here: ``[paths]`` relative to the rcfile."""
    settings = data.server_settings(config.rcfile)
    folder = config.folder
    paths: dict[str, list[str]] = {}
    for name, entries in settings.paths.items():
        absolute = []
        for number, entry in enumerate(entries):
            keep = (entry.startswith("*") or os.path.isabs(entry)
                    or (number > 0 and re.match(r"^[A-Za-z]:[\\/]|^\\\\", entry)))
            absolute.append(entry if keep else str(folder / entry) + (
                os.sep if entry.endswith(("/", "\\")) else ""))
        paths[name] = absolute
    settings = copy.copy(settings)
    settings.paths = paths
    return settings


def _aliases(settings: CoverageConfig) -> PathAliases:
    aliases = PathAliases(relative=settings.relative_files)
    for entries in settings.paths.values():
        for pattern in entries[1:]:
            aliases.add(pattern, entries[0])
    return aliases


def local_roots(settings: CoverageConfig, folder: Path) -> list[str]:
    """Return where local source files are: ``[run] source`` folders, else the rcfile's."""
    roots = [os.path.realpath(src) for src in settings.source or () if os.path.isdir(src)]
    return roots or [os.path.realpath(folder)]


def unmatched_files(settings: CoverageConfig, files: Sequence[str], folder: Path) -> list[str]:
    """Return the measured files of ``files`` that ``[paths]`` maps to no local file.

    Local means under the collector's ``[run] source`` folders (else the
    rcfile's folder): a host's path that happens to exist here too (the same
    machine, a shared disk) is not the checkout being reported.
    """
    aliases = _aliases(settings)
    roots = local_roots(settings, folder)
    unmatched: set[str] = set()
    for name in files:
        collected = CoverageData(name)
        collected.read()
        for measured in collected.measured_files():
            mapped = os.path.realpath(aliases.map(measured))
            inside = any(mapped == root or mapped.startswith(root + os.sep) for root in roots)
            if not inside or not os.path.exists(mapped):
                unmatched.add(measured)
        collected.close(force=True)
    return sorted(unmatched)


def _local_files_named(folder: Path, name: str, limit: int = 20_000) -> list[Path]:
    found = []
    seen = 0
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
        seen += len(names)
        if name in names:
            found.append(Path(root) / name)
        if seen > limit:
            break
    return found


def suggest_paths_entry(remote_path: str, folder: Path) -> str | None:
    """Return a ``[paths]`` line mapping ``remote_path`` into ``folder``, None if no file fits."""
    remote_parts = re.split(r"[\\/]", remote_path)
    best: tuple[int, Path] | None = None
    for local in _local_files_named(folder, remote_parts[-1]):
        local_parts = local.relative_to(folder).parts
        common = 0
        while (common < len(local_parts) and common < len(remote_parts) - 1
               and local_parts[-1 - common] == remote_parts[-1 - common]):
            common += 1
        if best is None or common > best[0]:
            best = (common, local)
    if best is None:
        return None
    common, local = best
    local_parts = local.relative_to(folder).parts
    # Map the folder that holds the common tail (webapp/ for webapp/views.py), not the file.
    keep = max(common - 1, 1) if len(local_parts) > 1 else common
    local_dir = "/".join(local_parts[:len(local_parts) - keep])
    remote_dir = "/".join(remote_parts[:len(remote_parts) - keep])
    sep = "\\" if "\\" in remote_path and "/" not in remote_path else "/"
    if sep == "\\":
        remote_dir = remote_dir.replace("/", "\\")
    name = re.sub(r"\W+", "_", local_parts[-1 - keep] if len(local_parts) > keep else "source")
    return f"{name or 'source'} = {local_dir or '.'}/, {remote_dir}{sep}"


def explain_unmatched(unmatched: Sequence[str], config: ServerConfig) -> str:
    """Return the one line that names the unmatched files and the entry that maps them."""
    first = unmatched[0]
    more = f" (and {len(unmatched) - 1} more)" if len(unmatched) > 1 else ""
    entry = suggest_paths_entry(first, config.folder)
    head = f"collected data names {first}{more}, which matches no local file"
    if entry is None:
        name = re.split(r"[\\/]", first)[-1]
        return (f"{head}, and no file named {name} is under {config.folder}: collect from the "
                f"checkout of the code the agents run, and map it with a [paths] entry in "
                f"{config.rcfile}")
    return f"{head}; add this [paths] entry to {config.rcfile}: {entry}"
