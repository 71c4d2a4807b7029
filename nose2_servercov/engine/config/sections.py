"""``[servercov:NAME]`` sections: the other processes of a run (workers, services, helpers).

A real application is rarely one server: its workers, a second service and
their Redis run beside it.  Each is a section of the rcfile with a few keys of
its own, declared once in :data:`SECTION_KEYS` (the parsers are the main key
table's, so a value means the same everywhere).  Everything that can be told
from the file alone is refused here, before anything starts, in one line
naming the file, the section and the key: a bad name, an unknown key (a
run-wide key such as ``reports`` is named as belonging to ``[servercov]``),
a placeholder naming an unknown section or one without a port, ``ready_path``
without a port, a bad ``ready_output``, two sections on one fixed port.
"""

from __future__ import annotations

import re
import signal
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nose2_servercov.engine.config.keys import (
    KEYS_BY_NAME,
    SECTION,
    SECTION_PLACEHOLDER,
    Key,
    closest,
    key_reference,
    key_table,
)
from nose2_servercov.errors import ConfigError

NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
OWN_PLACEHOLDERS = ("port", "url")  # a section that uses them has a port


def _regex(value: str) -> re.Pattern[str] | None:
    text = value.strip()
    if not text:
        return None
    try:
        return re.compile(text)
    except re.error as exc:
        raise ValueError(f"a Python regular expression ({exc})") from None


def _shared(name: str, meaning: str, default: str | None = None) -> Key:
    """Return the main table's key ``name`` with the section's default and meaning."""
    key = KEYS_BY_NAME[name]
    return Key(name, key.parse, key.default if default is None else default, meaning)


SECTION_KEYS: tuple[Key, ...] = (
    _shared("command", "how to start this process (as `[servercov] command`); its own "
            "`{host}`, `{port}`, `{url}`, and `{NAME_port}`, `{NAME_host}`, `{NAME_url}` of "
            "any section"),
    _shared("cwd", "working directory (default: the rcfile's folder)"),
    _shared("env", "extra environment, one `NAME = value` a line; placeholders as in "
            "`command`"),
    _shared("host", "where the process listens and is reached"),
    Key("port", KEYS_BY_NAME["port"].parse, "",
        "its port; 0 = a free port; none = no port, unless `command` or `env` uses "
        "`{port}` or `{url}` (then a free one)"),
    _shared("ready_path", "if set, ready when this path answers with a status < 500"),
    Key("ready_output", _regex, "", "a regular expression: ready when an output line "
        "matches it; with neither this nor `ready_path`, ready when the port accepts a "
        "connection, or at once without a port"),
    _shared("startup_timeout", "seconds to wait for ready"),
    _shared("shutdown_path", "path called at the stop (POST, header `X-Servercov-Token`); "
            "blank = stop by `stop_signal`"),
    _shared("stop_signal", "signal sent to its process group at the stop"),
    _shared("shutdown_timeout", "seconds for each stop step before escalating"),
    _shared("log", "file that receives its stdout and stderr"),
    Key("measured", KEYS_BY_NAME["remote_stop"].parse, "true",
        "`false`: started as it is, without coverage (infrastructure such as Redis)"),
)
SECTION_KEYS_BY_NAME = {key.name: key for key in SECTION_KEYS}
PORT_NONE = -1  # a section without a port


@dataclass(frozen=True)
class SectionConfig:
    """One validated ``[servercov:NAME]`` section, paths made absolute."""

    name: str
    command: list[str]
    cwd: Path
    env: dict[str, str]
    host: str
    port: int  # PORT_NONE: none; 0: a free one
    ready_path: str | None
    ready_output: re.Pattern[str] | None
    startup_timeout: float
    shutdown_path: str | None
    stop_signal: signal.Signals
    shutdown_timeout: float
    log: Path | None
    measured: bool

    @property
    def has_port(self) -> bool:
        """Return whether this section listens on a port (fixed or free)."""
        return self.port != PORT_NONE

    @property
    def variable_suffix(self) -> str:
        """Return NAME as the tests' variables spell it: upper case, ``-`` as ``_``."""
        return self.name.upper().replace("-", "_")


def placeholder_names(template: str) -> list[str]:
    """Return the ``{name}`` fields of ``template`` (a lone brace gives none)."""
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name]
    except ValueError:
        return []


def _texts(raw: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    """Yield (key, text) of every value that may hold placeholders."""
    for word in raw.get("command", []):
        yield "command", word
    for value in raw.get("env", {}).values():
        yield "env", value
    if raw.get("url"):
        yield "url", raw["url"]


def _check_references(origin: str, section: str, values: Mapping[str, Any],
                      ported: Mapping[str, bool]) -> None:
    """Refuse a ``{NAME_...}`` of an unknown section, or of one without a port."""
    for key, text in _texts(values):
        for field in placeholder_names(text):
            match = SECTION_PLACEHOLDER.fullmatch(field)
            if match is None:
                continue
            name = match.group(1)
            if name not in ported:
                known = ", ".join(ported) or "none"
                raise ConfigError(f"{origin}: [{section}] {key}: {{{field}}} names no section: "
                                  f"expected [{SECTION}:{name}] in the file (sections: {known})")
            if not ported[name]:
                raise ConfigError(f"{origin}: [{section}] {key}: {{{field}}}: [{SECTION}:{name}] "
                                  "has no port: set 'port = 0' there for a free one")


def _parse_section(rcfile: Path, name: str, raw: Mapping[str, str]) -> dict[str, Any]:
    section = f"{SECTION}:{name}"
    values: dict[str, Any] = {}
    for key_name, text in raw.items():
        key = SECTION_KEYS_BY_NAME.get(key_name.replace("-", "_"))
        if key is None:
            wanted = key_name.replace("-", "_")
            if wanted in KEYS_BY_NAME:
                raise ConfigError(f"{rcfile}: [{section}] {key_name}: a key of [{SECTION}] "
                                  f"only (it concerns the whole run), not of a section")
            hint = closest(wanted, tuple(SECTION_KEYS_BY_NAME))
            raise ConfigError(f"{rcfile}: [{section}] {key_name}: unknown key; " + (
                f"did you mean {hint}?" if hint else
                f"expected one of: {', '.join(SECTION_KEYS_BY_NAME)}"))
        try:
            values[key.name] = key.parse(text)
        except ValueError as exc:
            raise ConfigError(f"{rcfile}: [{section}] {key.name}: expected {exc}, "
                              f"got {text.strip()!r}") from None
    if "command" not in values:
        raise ConfigError(f"{rcfile}: [{section}] command: expected how to start this "
                          "process, e.g. 'command = redis-server --port {port}', got nothing")
    for key in SECTION_KEYS:
        if key.name not in values and key.default is not None:
            values[key.name] = key.parse(key.default) if key.name != "port" else None
    return values


def _own_port(values: Mapping[str, Any]) -> int:
    """Return the section's port: as set, else a free one if it names its own, else none."""
    if values["port"] is not None:
        return int(values["port"])
    uses = {field for _, text in _texts(values) for field in placeholder_names(text)}
    return 0 if uses & set(OWN_PLACEHOLDERS) else PORT_NONE


def _absolute(rcfile: Path, section: str, values: dict[str, Any]) -> None:
    try:
        values["cwd"] = (rcfile.parent / values["cwd"]).resolve() if values["cwd"] \
            else rcfile.parent
        values["log"] = (rcfile.parent / values["log"]).resolve() if values["log"] else None
    except (OSError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"{rcfile}: [{section}] cwd or log: expected a usable path: "
                          f"{exc}") from None
    if values["log"] is not None and values["log"].is_dir():
        raise ConfigError(f"{rcfile}: [{section}] log: expected a file for its output, got "
                          f"the folder {values['log']}")


def load_sections(rcfile: Path, raw_sections: list[tuple[str, dict[str, str]]],
                  main: Mapping[str, Any]) -> tuple[SectionConfig, ...]:
    """Validate every ``[servercov:NAME]`` of ``rcfile`` (file order) against the whole file.

    ``main``: the parsed ``[servercov]`` values, whose placeholders are
    checked here too, since only here are the section names known.
    """
    parsed: list[tuple[str, dict[str, Any]]] = []
    for name, raw in raw_sections:
        values = _parse_section(rcfile, name, raw)
        values["port"] = _own_port(values)
        section = f"{SECTION}:{name}"
        if values["ready_path"] and values["port"] == PORT_NONE:
            raise ConfigError(f"{rcfile}: [{section}] ready_path: needs a port to call; "
                              "expected 'port = 0' (a free one) or a fixed port, or "
                              "ready_output instead")
        _absolute(rcfile, section, values)
        parsed.append((name, values))
    ported = {name: values["port"] != PORT_NONE for name, values in parsed}
    _check_references(str(rcfile), SECTION, main, ported)
    taken: dict[int, str] = {}
    if main.get("port"):
        taken[int(main["port"])] = SECTION
    for name, values in parsed:
        section = f"{SECTION}:{name}"
        _check_references(str(rcfile), section, values, ported)
        if values["port"] > 0 and values["port"] in taken:
            raise ConfigError(f"{rcfile}: [{section}] port: {values['port']} is the port of "
                              f"[{taken[values['port']]}] too: expected another one, or "
                              "0 for a free one")
        if values["port"] > 0:
            taken[values["port"]] = section
    return tuple(SectionConfig(name=name, **values) for name, values in parsed)


def section_reference(width: int = 79) -> str:
    """Return the section keys as plain text, for ``servercov keys`` after the main ones."""
    heading = (f"The keys of a [{SECTION}:NAME] section (NAME: letters, digits, _ and -): "
               "one more process of the run, started in file order before the server and "
               "stopped after it, in reverse order.")
    return key_reference(width, heading=heading, keys=SECTION_KEYS)


def section_key_table() -> str:
    """Return the README's Markdown table of section keys, made from :data:`SECTION_KEYS`."""
    return key_table(SECTION_KEYS)
