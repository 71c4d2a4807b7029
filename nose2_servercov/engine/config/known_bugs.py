"""Server setups known to break on the running Python, refused before anything starts.

Each check reads only the server's command line (and the uWSGI ini file it
names) and returns one line: what breaks, the upstream bug, the workaround.
"""

from __future__ import annotations

import configparser
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

_TRUE = ("", "1", "true", "yes", "on", "y", "t")


def _uwsgi_options(command: Sequence[str], cwd: Path,
                   env: Mapping[str, str]) -> dict[str, str] | None:
    """Return the uWSGI options set on ``command`` and its ``--ini`` files; None if not uWSGI."""
    if not command or os.path.basename(command[0]) != "uwsgi":
        return None
    options: dict[str, str] = {}
    for name, value in env.items():
        if name.startswith("UWSGI_"):
            options[name[len("UWSGI_"):].lower().replace("_", "-")] = value
    words = list(command[1:])
    for number, word in enumerate(words):
        if not word.startswith("--"):
            continue
        name, sep, value = word[2:].partition("=")
        following = words[number + 1] if number + 1 < len(words) else ""
        if not sep and following and not following.startswith("-"):
            value = following
        if name == "ini" and value:
            options.update(_ini_options(cwd / value))
        options[name] = value
    return options


def _ini_options(path: Path) -> dict[str, str]:
    parser = configparser.RawConfigParser(strict=False, allow_no_value=True,
                                          inline_comment_prefixes=(";", "#"))
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except (OSError, UnicodeDecodeError, configparser.Error):
        return {}  # uWSGI itself will say what is wrong with it
    if not parser.has_section("uwsgi"):
        return {}
    return {name: (value or "") for name, value in parser.items("uwsgi")}


def _on(options: Mapping[str, str], name: str) -> bool:
    return name in options and options[name].strip().lower() in _TRUE


def refusal(command: Sequence[str], cwd: Path, env: Mapping[str, str], *,
            python: tuple[int, int] | None = None) -> str | None:
    """Return why ``command`` cannot be measured on this Python (one line), or None."""
    python = python or (sys.version_info[0], sys.version_info[1])
    options = _uwsgi_options(command, cwd, env)
    if options is None:
        return None
    if (python >= (3, 13) and _on(options, "py-call-osafterfork")
            and not _on(options, "py-call-uwsgi-fork-hooks")):
        # uWSGI calls PyOS_AfterFork_Child without PyOS_BeforeFork; from 3.13 that
        # unlocks a mutex the child does not hold and aborts it (no fixed release).
        return ("uWSGI's py-call-osafterfork aborts every worker at fork on Python "
                f"{python[0]}.{python[1]} (\"Fatal Python error: _PyRecursiveMutex_Unlock\", "
                "uWSGI bugs unbit/uwsgi#2692 and #2710): use py-call-uwsgi-fork-hooks = true "
                "instead, which runs Python's fork hooks on every Python")
    return None
