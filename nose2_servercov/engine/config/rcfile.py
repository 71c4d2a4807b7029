"""Find the rcfile and read its servercov section as raw strings, as coverage finds its own.

The rcfile is a coverage.py configuration file: an ini file (``.apirc``,
``.coveragerc``; ``setup.cfg`` and ``tox.ini`` with sections prefixed
``coverage:``) or ``pyproject.toml`` (tables under ``tool.``).  coverage reads
its own sections from it; this module finds the file and returns the
``[servercov]`` section's key/value strings, which :mod:`.keys` then parses.
"""

from __future__ import annotations

import configparser
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from nose2_servercov.engine.config.keys import SECTION
from nose2_servercov.errors import ConfigError

# Searched in this order, as coverage searches its own config files (.apirc first).
DEFAULT_RCFILES = (".apirc", ".coveragerc", "setup.cfg", "tox.ini", "pyproject.toml")
PREFIXED_RCFILES = ("setup.cfg", "tox.ini")  # sections named [coverage:...], as coverage's
LINE_KEYS = ("env", "remotes")  # keys whose TOML list items become one line each


def section_name(rcfile: Path) -> str:
    """Return how the servercov section is spelled in ``rcfile``, as coverage spells its own.

    coverage reads ``[tool.coverage.run]`` in pyproject.toml and ``[coverage:run]``
    in setup.cfg and tox.ini; the servercov section sits beside them.
    """
    if rcfile.suffix == ".toml":
        return f"tool.{SECTION}"
    if rcfile.name in PREFIXED_RCFILES:
        return f"coverage:{SECTION}"
    return SECTION


def _toml_module() -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
        return tomllib
    else:  # what coverage itself reads TOML with before 3.11 (coverage[toml])
        try:
            import tomli
        except ImportError:
            raise ConfigError("reading pyproject.toml on Python 3.10 needs tomli: "
                              "pip install 'coverage[toml]'") from None
        return tomli


def _toml_text(name: str, value: Any) -> str:
    """Return a TOML value as the string the key table parses."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        items = [str(v) for v in value]
        if name == "command":
            return shlex.join(items)
        return "\n".join(items) if name in LINE_KEYS else ", ".join(items)
    if isinstance(value, dict) and name in ("env",):
        return "\n".join(f"{k} = {v}" for k, v in value.items())
    raise ValueError(type(value).__name__)


def _read_toml_section(rcfile: Path) -> dict[str, str] | None:
    toml = _toml_module()
    try:
        with open(rcfile, "rb") as f:
            document = toml.load(f)
    except OSError as exc:
        raise ConfigError(f"{rcfile}: cannot be read: {exc.strerror or exc}") from None
    except (toml.TOMLDecodeError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"{rcfile}: cannot be read as TOML: {first}") from None
    table = document.get("tool", {}).get(SECTION)
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(f"{rcfile}: [tool.{SECTION}]: expected a table of keys")
    raw = {}
    for name, value in table.items():
        try:
            raw[name] = _toml_text(name, value)
        except ValueError:
            raise ConfigError(f"{rcfile}: [tool.{SECTION}] {name}: expected a string, number, "
                              f"boolean or list, got a TOML {type(value).__name__}") from None
    return raw


def _read_ini_section(rcfile: Path) -> dict[str, str] | None:
    parser = configparser.RawConfigParser(strict=False)
    try:
        with open(rcfile, encoding="utf-8") as f:
            parser.read_file(f)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{rcfile}: cannot be read: expected UTF-8 text, found byte "
                          f"{exc.object[exc.start:exc.start + 1]!r} at offset {exc.start}") \
            from None
    except (OSError, configparser.Error) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"{rcfile}: cannot be read as an ini file: {first}") from None
    for name in dict.fromkeys([section_name(rcfile), SECTION]):
        if parser.has_section(name):
            return dict(parser.items(name))
    return None


def servercov_section(rcfile: Path) -> dict[str, str] | None:
    """Return the raw servercov key/value strings of ``rcfile``, None if it has no section."""
    if rcfile.suffix == ".toml":
        return _read_toml_section(rcfile)
    return _read_ini_section(rcfile)


def read_section(rcfile: Path) -> dict[str, str]:
    """Return the raw ``[servercov]`` key/value strings of ``rcfile`` (empty if none)."""
    return servercov_section(rcfile) or {}


def find_rcfile(explicit: str | os.PathLike[str] | None = None, *,
                start: Path | None = None, flag: str = "--rcfile") -> Path:
    """Return the rcfile to use: the one named, else the first found with a servercov section.

    The search order is coverage's own for its config files, with ``.apirc``
    first: ``.apirc``, ``.coveragerc``, ``setup.cfg``, ``tox.ini``,
    ``pyproject.toml``, in ``start`` (the current folder).  ``flag`` is how the
    front end in use names the option, for the message when nothing is found.
    """
    start = start or Path.cwd()
    if explicit:
        path = (start / explicit).resolve()
        if not path.is_file():
            raise ConfigError(f"{explicit}: the rcfile does not exist (expected a coverage "
                              f"config file with a [{SECTION}] section)")
        return path
    for name in DEFAULT_RCFILES:
        path = start / name
        if path.is_file() and servercov_section(path) is not None:
            return path.resolve()
    raise ConfigError(
        f"{start}: no rcfile: none of {', '.join(DEFAULT_RCFILES)} here has a servercov "
        f"section ([{SECTION}]; [coverage:{SECTION}] in setup.cfg or tox.ini; "
        f"[tool.{SECTION}] in pyproject.toml): add one, or name the file with {flag} FILE")
