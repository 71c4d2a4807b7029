"""The ``[servercov]`` section of the rcfile, validated: :class:`ServerConfig`.

The rcfile is a coverage.py configuration file; coverage reads its own
sections from it and servercov reads only ``[servercov]``.  This package holds
everything decided before a server starts:

- :mod:`.rcfile`: find the file and read the section's raw strings;
- :mod:`.keys`: every key declared once (name, parser, default, meaning);
- :mod:`.reports`: the one table of report kinds (adding a format is one row);
- :mod:`.cores`: which coverage core measures the server processes;
- :mod:`.greenlets`: gevent/eventlet servers announced to coverage from the command;
- :mod:`.known_bugs`: setups known to break, refused before anything starts;
- :mod:`.preflight`: what only the machine can tell (host, log, report places).

This module puts the config together (defaults, overrides, paths made
absolute, the URL checked against the host) and re-exports the names callers
import from here (``SECTION``, ``KEYS``, ``find_rcfile``, ``key_table``...).
"""

from __future__ import annotations

import signal
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nose2_servercov.engine.config.keys import (
    CONTEXTS,
    CORES,
    DEFAULT_URL,
    KEYS,
    KEYS_BY_NAME,
    LOST_DATA,
    MAX_AUTOSAVE,
    MAX_TIMEOUT,
    PLACEHOLDERS,
    REPORTS,
    SECTION,
    URL_PLACEHOLDERS,
    Key,
    key_reference,
    key_table,
    parse_values,
)
from nose2_servercov.engine.config.rcfile import (
    DEFAULT_RCFILES,
    LINE_KEYS,
    PREFIXED_RCFILES,
    extra_sections,
    find_rcfile,
    folders_to_search,
    misspelled_section,
    read_section,
    section_name,
    servercov_section,
)
from nose2_servercov.engine.config.sections import (
    SECTION_KEYS,
    SectionConfig,
    load_sections,
    section_reference,
)
from nose2_servercov.errors import ConfigError

__all__ = [
    "CONTEXTS", "CORES", "DEFAULT_RCFILES", "DEFAULT_URL", "KEYS", "KEYS_BY_NAME", "LINE_KEYS",
    "LOST_DATA", "MAX_AUTOSAVE", "MAX_TIMEOUT", "PLACEHOLDERS", "PREFIXED_RCFILES", "REPORTS",
    "SECTION", "SECTION_KEYS", "URL_PLACEHOLDERS", "ConfigError", "Key", "SectionConfig",
    "ServerConfig", "find_rcfile", "folders_to_search", "key_reference", "key_table",
    "load_config", "misspelled_section", "parse_values", "read_section", "section_name",
    "section_reference", "servercov_section",
]


@dataclass(frozen=True)
class ServerConfig:
    """The validated ``[servercov]`` settings of one rcfile, paths made absolute."""

    rcfile: Path
    command: list[str]
    host: str
    port: int
    url: str
    cwd: Path
    env: dict[str, str]
    ready_path: str | None
    startup_timeout: float
    shutdown_path: str | None
    shutdown_method: str
    stop_signal: signal.Signals
    shutdown_timeout: float
    log: Path | None
    reports: tuple[str, ...]
    autosave: float
    contexts: str
    core: str
    lost_data: str
    remotes: tuple[str, ...]
    remote_stop: bool
    # The [servercov:NAME] sections, in file order: started before the server.
    sections: tuple[SectionConfig, ...] = ()

    @property
    def folder(self) -> Path:
        """Return the rcfile's folder, the base of every relative path in it."""
        return self.rcfile.parent


def load_config(rcfile: Path, overrides: Mapping[str, str] | None = None,
                *, overrides_origin: str = "nose2 config",
                require_command: bool = True) -> ServerConfig:
    """Read and validate ``[servercov]`` of ``rcfile``; ``overrides`` win key by key.

    ``command`` may be absent when ``remotes`` is set (nothing is started
    locally), or when ``require_command`` is false (``servercov collect``);
    it is then an empty list.
    """
    try:
        rcfile = Path(rcfile).resolve()
        is_file = rcfile.is_file()
    except (OSError, ValueError) as exc:  # a NUL in the name, a loop of links
        raise ConfigError(f"{rcfile}: not a usable rcfile name: {exc}") from None
    if not is_file:
        raise ConfigError(f"{rcfile}: the rcfile does not exist")
    values = {key.name: key.parse(key.default) for key in KEYS if key.default is not None}
    origins = dict.fromkeys(values, str(rcfile))
    section = section_name(rcfile)
    own = servercov_section(rcfile)
    misspelled = misspelled_section(rcfile) if own is None else None  # [servercove]
    if misspelled:
        raise ConfigError(misspelled)
    for raw, origin, named in ((own or {}, str(rcfile), section),
                               (overrides or {}, overrides_origin, SECTION)):
        parsed = parse_values(raw, origin=origin, section=named)
        values.update(parsed)
        origins.update(dict.fromkeys(parsed, origin))
    if "command" not in values and (values["remotes"] or not require_command):
        values["command"] = []
    if "command" not in values:
        raise ConfigError(f"{rcfile}: [{section}] command: expected how to start the server, "
                          "e.g. 'command = {python} -m myapp --port {port}', got nothing")
    values["url"] = _checked_url(values["url"], values["host"], origins["url"])
    values["sections"] = load_sections(rcfile, extra_sections(rcfile), values)
    folder = rcfile.parent
    try:
        values["cwd"] = (folder / values["cwd"]).resolve() if values.get("cwd") else folder
        if values.get("log"):
            values["log"] = (folder / values["log"]).resolve()
    except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: a loop of links (3.10)
        raise ConfigError(f"{rcfile}: [{SECTION}] cwd or log: expected a usable path: "
                          f"{exc}") from None
    if values.get("log") and values["log"].is_dir():
        raise ConfigError(f"{origins['log']}: [{SECTION}] log: expected a file for the "
                          f"server's output, got the folder {values['log']}")
    return ServerConfig(rcfile=rcfile, **values)


class _AnySection(dict[str, object]):
    """The placeholders of a URL template, with a stand-in for a section's."""

    def __missing__(self, key: str) -> object:
        return self["host"] if key.endswith("_host") else 1


def _checked_url(template: str, host: str, origin: str) -> str:
    """Return the url template, bracketing an IPv6 host in the default; refuse a bad URL."""
    if template == DEFAULT_URL and ":" in host:
        template = "http://[{host}]:{port}"
    try:
        # {NAME_port} and the like of a section: any valid value will do here.
        parts = urllib.parse.urlsplit(template.format_map(_AnySection(host=host, port=1)))
        parts.port  # noqa: B018 (raises ValueError on a bad port)
        good = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        good = False
    if not good:
        hint = (" (an IPv6 host goes in brackets: http://[{host}]:{port})" if ":" in host
                else "")
        raise ConfigError(f"{origin}: [{SECTION}] url: expected an http:// or https:// URL "
                          f"with a host and a valid port once {{host}} is {host!r}{hint}, "
                          f"got {template!r}")
    return template
