"""Find the rcfile and read its servercov section as raw strings, as coverage finds its own.

The rcfile is a coverage.py configuration file: an ini file (``.apirc``,
``.coveragerc``; ``setup.cfg`` and ``tox.ini`` with sections prefixed
``coverage:``) or ``pyproject.toml`` (tables under ``tool.``).  coverage reads
its own sections from it; this module finds the file and returns the
``[servercov]`` section's key/value strings, which :mod:`.keys` then parses.
"""

from __future__ import annotations

import configparser
import difflib
import os
import re
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


def _toml_document(rcfile: Path) -> dict[str, Any]:
    toml = _toml_module()
    try:
        with open(rcfile, "rb") as f:
            document: dict[str, Any] = toml.load(f)
    except OSError as exc:
        raise ConfigError(f"{rcfile}: cannot be read: {exc.strerror or exc}") from None
    except (toml.TOMLDecodeError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"{rcfile}: cannot be read as TOML: {first}") from None
    return document


def _read_toml_section(rcfile: Path) -> dict[str, str] | None:
    table = _toml_document(rcfile).get("tool", {}).get(SECTION)
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(f"{rcfile}: [tool.{SECTION}]: expected a table of keys")
    raw = {}
    for name, value in table.items():
        if isinstance(value, dict) and name not in LINE_KEYS:
            continue  # [tool.servercov.NAME]: a section of its own (extra_sections)
        try:
            raw[name] = _toml_text(name, value)
        except ValueError:
            raise ConfigError(f"{rcfile}: [tool.{SECTION}] {name}: expected a string, number, "
                              f"boolean or list, got a TOML {type(value).__name__}") from None
    return raw


def _ini_parser(rcfile: Path) -> configparser.RawConfigParser:
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
    return parser


def _read_ini_section(rcfile: Path) -> dict[str, str] | None:
    parser = _ini_parser(rcfile)
    for name in dict.fromkeys([section_name(rcfile), SECTION]):
        if parser.has_section(name):
            return dict(parser.items(name))
    return None


def servercov_section(rcfile: Path) -> dict[str, str] | None:
    """Return the raw servercov key/value strings of ``rcfile``, None if it has no section."""
    if rcfile.suffix == ".toml":
        return _read_toml_section(rcfile)
    return _read_ini_section(rcfile)


def _section_names(rcfile: Path) -> list[tuple[str, str]]:
    """Return (spelling, NAME) of every ``[servercov:NAME]`` of ``rcfile``, in file order."""
    if rcfile.suffix == ".toml":
        table = _toml_document(rcfile).get("tool", {}).get(SECTION)
        if not isinstance(table, dict):
            return []
        return [(f"tool.{SECTION}.{name}", name) for name, value in table.items()
                if isinstance(value, dict) and name not in LINE_KEYS]
    found = []
    for spelled in _ini_parser(rcfile).sections():
        for prefix in dict.fromkeys([section_name(rcfile) + ":", SECTION + ":"]):
            if spelled.startswith(prefix):
                found.append((spelled, spelled[len(prefix):]))
                break
    return found


def extra_sections(rcfile: Path) -> list[tuple[str, dict[str, str]]]:
    """Return every ``[servercov:NAME]`` section's NAME and raw strings, in file order.

    A NAME other than letters, digits, ``_`` and ``-`` (it becomes part of
    placeholders and of environment variable names) is refused here, before
    anything starts; so is a NAME given twice.
    """
    names = _section_names(rcfile)
    parser = _ini_parser(rcfile) if rcfile.suffix != ".toml" and names else None
    table = (_toml_document(rcfile).get("tool", {}).get(SECTION, {})
             if rcfile.suffix == ".toml" and names else {})
    found: list[tuple[str, dict[str, str]]] = []
    for spelled, name in names:
        shown = spelled if spelled.isprintable() else repr(spelled)
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            raise ConfigError(f"{rcfile}: [{shown}]: expected a section name of letters, "
                              "digits, '_' and '-' after 'servercov:', such as [servercov:redis]")
        if any(name == seen for seen, _ in found):
            raise ConfigError(f"{rcfile}: [{shown}]: a second section of that name")
        if parser is not None:
            found.append((name, dict(parser.items(spelled))))
            continue
        raw = {}
        for key, value in table[name].items():
            try:
                raw[key] = _toml_text(key, value)
            except ValueError:
                raise ConfigError(f"{rcfile}: [{shown}] {key}: expected a string, number, "
                                  f"boolean or list, got a TOML {type(value).__name__}") from None
        found.append((name, raw))
    return found


def read_section(rcfile: Path) -> dict[str, str]:
    """Return the raw ``[servercov]`` key/value strings of ``rcfile`` (empty if none)."""
    return servercov_section(rcfile) or {}


def _table_names(document: dict[str, Any], prefix: str = "", depth: int = 3) -> list[str]:
    """Return the dotted names of the tables of a TOML document, up to ``depth`` levels."""
    names = []
    for name, value in document.items():
        if isinstance(value, dict):
            names.append(prefix + name)
            if depth > 1:
                names += _table_names(value, f"{prefix}{name}.", depth - 1)
    return names


def misspelled_section(rcfile: Path) -> str | None:
    """Return the one-line refusal of a ``[servercov...]``-like section, None if there is none.

    Called for a file that has no servercov section: ``[servercove]``, or
    ``[coverage:servercov]`` in a ``.apirc``, was surely meant as one, and
    saying "no rcfile" would send the user looking for a file they have.
    """
    if rcfile.suffix == ".toml":
        names = _table_names(_toml_document(rcfile))
    else:
        names = _ini_parser(rcfile).sections()
    expected = section_name(rcfile)
    for name in names:
        bare = re.split(r"[:.]", name)[-1].strip().lower()
        if SECTION in bare or difflib.get_close_matches(bare, [SECTION], cutoff=0.85):
            shown = name if name.isprintable() else repr(name)  # a TOML key may hold "\n"
            return (f"{rcfile}: [{shown}]: not a section servercov reads; "
                    f"did you mean [{expected}]?")
    return None


def folders_to_search(start: Path, top: Path | None = None) -> list[Path]:
    """Return the folders searched for an rcfile: ``start``, then its parents up to ``top``.

    ``top`` is pytest's rootdir under pytest; otherwise the nearest folder
    holding ``.git`` (a project's rcfile sits at its root, tests run from a
    subfolder); a folder above it belongs to something else and is never
    searched.  With no such folder up to the filesystem's root, or a ``top``
    that is not ``start`` nor one of its parents, only ``start`` is searched.
    """
    chain = [start, *start.parents]
    if top is None:
        top = next((folder for folder in chain if (folder / ".git").exists()), None)
    else:
        top = top.resolve()
    if top is None or top not in chain:
        return [start]
    return chain[:chain.index(top) + 1]


def find_rcfile(explicit: str | os.PathLike[str] | None = None, *,
                start: Path | None = None, flag: str = "--rcfile",
                top: Path | None = None) -> Path:
    """Return the rcfile to use: the one named, else the first found with a servercov section.

    The search order is coverage's own for its config files, with ``.apirc``
    first: ``.apirc``, ``.coveragerc``, ``setup.cfg``, ``tox.ini``,
    ``pyproject.toml``, in ``start`` (the current folder), then in each of
    its parents up to the project's top (:func:`folders_to_search`; ``top``:
    pytest's rootdir).  ``flag`` is how the front end in use names the
    option, for the message when nothing is found.
    """
    start = (start or Path.cwd()).resolve()
    if explicit:
        path = (start / explicit).resolve()
        if not path.is_file():
            raise ConfigError(f"{explicit}: the rcfile does not exist (expected a coverage "
                              f"config file with a [{SECTION}] section)")
        return path
    folders = folders_to_search(start, top)
    misspelled = None
    for folder in folders:
        for name in DEFAULT_RCFILES:
            path = folder / name
            if not path.is_file():
                continue
            if servercov_section(path) is not None:
                return path.resolve()
            misspelled = misspelled or misspelled_section(path)
    if misspelled:
        raise ConfigError(misspelled)
    where = (f"{start}: no rcfile: none of {', '.join(DEFAULT_RCFILES)} here"
             if len(folders) == 1 else
             f"no rcfile: none of {', '.join(DEFAULT_RCFILES)} in "
             f"{', '.join(map(str, folders))}")
    raise ConfigError(
        f"{where} has a servercov section ([{SECTION}]; [coverage:{SECTION}] in setup.cfg or "
        f"tox.ini; [tool.{SECTION}] in pyproject.toml): add one, or name the file with "
        f"{flag} FILE")
