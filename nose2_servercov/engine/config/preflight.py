"""Checks made before the server starts, of what the config alone cannot tell.

The config checks the form of each value when it is loaded; whether the host
resolves, the log file can be opened and the report places can be written
depends on the machine, so it is checked here, right before the start: a run
that would end in an unwritable report or an unresolvable host is refused
before any server or test runs (issue 8).

One check is of the config alone but belongs to a start only: a command
that is not told its port while ``port = 0`` (issue 24).  ``servercov
snapshot``, ``stop`` and ``collect`` load the same rcfile and start nothing,
so the check is here rather than in the config's loading.
"""

from __future__ import annotations

import os
import string
from pathlib import Path

from coverage.config import CoverageConfig

from nose2_servercov.engine.config import SECTION, ServerConfig, section_name
from nose2_servercov.engine.config.reports import KINDS
from nose2_servercov.engine.server import network
from nose2_servercov.errors import ConfigError, ServerStartError, describe_os_error


def check_before_start(config: ServerConfig, settings: CoverageConfig) -> None:
    """Raise ServerStartError, before anything starts, for what would fail later."""
    _check_the_port_is_passed(config)
    try:
        network.resolve(config.host)
    except OSError as exc:
        raise ServerStartError(f"{config.rcfile}: [{SECTION}] host: cannot resolve "
                               f"{config.host!r} ({describe_os_error(exc)}); expected a "
                               "host name or address of this machine") from None
    if config.log is not None:
        try:
            config.log.parent.mkdir(parents=True, exist_ok=True)
            with open(config.log, "ab"):
                pass
        except OSError as exc:
            raise ServerStartError(f"{config.rcfile}: [{SECTION}] log: cannot open "
                                   f"{config.log} for writing ({describe_os_error(exc)})") \
                from None
    for name in config.reports:
        kind = KINDS[name]
        place = kind.place(settings)
        if place is None:  # the terminal
            continue
        problem = _unwritable(place, folder=kind.folder)
        if problem:
            raise ServerStartError(f"{config.rcfile}: {kind.setting}: the {name} "
                                   f"report cannot be written to {place}: {problem}")


def _check_the_port_is_passed(config: ServerConfig) -> None:
    """Refuse a command that cannot know its port: with ``port = 0`` it changes every run.

    Such a server listens where it pleases while servercov waits on the port
    it picked, until ``startup_timeout``; only ``{port}`` or ``{url}`` in the
    command tells it the port.  (A server started for remotes only has no command.)
    """
    if config.port != 0 or not config.command:
        return
    fields = {field for word in config.command
              for _, field, _, _ in string.Formatter().parse(word)}
    if not fields & {"port", "url"}:
        raise ConfigError(
            f"{config.rcfile}: [{section_name(config.rcfile)}] command: expected {{port}} "
            f"(or {{url}}) in the command: with port = 0 a free port is chosen per run and "
            f"the server must be told it, e.g. '--port {{port}}'; got "
            f"{' '.join(config.command)!r}")


def _unwritable(place: Path, *, folder: bool) -> str | None:
    """Return why ``place`` (a folder or a file to create) cannot be written, None if it can."""
    place = place.absolute()
    if place.exists():
        if folder and not place.is_dir():
            return "it exists and is not a folder"
        if not folder and place.is_dir():
            return "it is a folder"
        if not os.access(place, os.W_OK | (os.X_OK if folder else 0)):
            return "no permission to write it"
        return None
    ancestor = place.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is not a folder"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"no permission to create it in {ancestor}"
    return None
