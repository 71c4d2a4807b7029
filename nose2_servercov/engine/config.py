"""The ``[servercov]`` section of the rcfile: every key declared once, then parsed.

The rcfile is a coverage.py configuration file; coverage reads its own
sections from it and this module reads only ``[servercov]``.  Each key is
declared once in :data:`KEYS` (name, parser, default, meaning); validation,
defaults and the README's key table all come from that one table, so they
cannot drift apart.
"""

from __future__ import annotations

import configparser
import ipaddress
import os
import re
import shlex
import signal
import string
import sys
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nose2_servercov.errors import ConfigError

SECTION = "servercov"
# Searched in this order, as coverage searches its own config files (.apirc first).
DEFAULT_RCFILES = (".apirc", ".coveragerc", "setup.cfg", "tox.ini", "pyproject.toml")
PREFIXED_RCFILES = ("setup.cfg", "tox.ini")  # sections named [coverage:...], as coverage's
LINE_KEYS = ("env", "remotes")  # keys whose TOML list items become one line each
PLACEHOLDERS = ("python", "host", "port", "url")
URL_PLACEHOLDERS = ("host", "port")
DEFAULT_URL = "http://{host}:{port}"
# Upper bounds keep every wait finite and within what the OS accepts: a socket
# timeout of 1e20 s overflows time_t (issue 8).
MAX_TIMEOUT = 3600.0
MAX_AUTOSAVE = 24 * 3600.0
REPORTS = ("term", "term-missing", "html", "xml", "json", "lcov")
CONTEXTS = ("off", "test")
CORES = ("auto", "ctrace", "sysmon", "pytrace")
LOST_DATA = ("fail", "warn")


def _no_nul(value: str) -> str:
    if "\0" in value:
        raise ValueError("text without NUL bytes")
    return value


def _check_placeholders(template: str, allowed: tuple[str, ...]) -> None:
    """Refuse unknown placeholders, format specs and conversions: only ``{name}``."""
    known = ", ".join(f"{{{p}}}" for p in allowed)
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as exc:  # a lone brace
        raise ValueError(f"placeholders among {known} (use {{{{ }}}} for a brace; {exc})") \
            from None
    for _, name, spec, conversion in fields:
        if name is None:
            continue
        if name not in allowed:
            raise ValueError(f"placeholders among {known} (use {{{{ }}}} for a brace)")
        if spec or conversion:
            suffix = (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            raise ValueError(f"placeholders among {known} without a conversion or format "
                             f"spec (not {{{name}{suffix}}})")


def _command(value: str) -> list[str]:
    _no_nul(value)
    try:
        words = shlex.split(value)
    except ValueError as exc:
        raise ValueError(f"a command line that shlex can split ({exc})") from None
    if not words:
        raise ValueError("a command line, such as '{python} -m myapp --port {port}'")
    for word in words:
        _check_placeholders(word, PLACEHOLDERS)
    return words


def _host(value: str) -> str:
    host = value.strip()
    if not re.fullmatch(r"[A-Za-z0-9._%:-]+", host):
        raise ValueError("a host name or an IP address (an IPv6 one without brackets)")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError("a host name or an IP address (an IPv6 one without "
                             "brackets)") from None
    return host


def _url(value: str) -> str:
    url = _no_nul(value.strip())
    if not re.fullmatch(r"[!-~]+", url):
        raise ValueError("a URL without spaces or control characters, such as "
                         "http://{host}:{port}")
    _check_placeholders(url, URL_PLACEHOLDERS)
    return url


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise ValueError("a whole number from 0 to 65535 (0 = a free port)")
    return port


def _seconds_up_to(limit: float) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        # Written so that NaN fails too.
        if not 0 < seconds <= limit:
            raise ValueError(f"a number of seconds greater than 0 and at most {limit:g}")
        return seconds
    return parse


_seconds = _seconds_up_to(MAX_TIMEOUT)
_autosave_seconds = _seconds_up_to(MAX_AUTOSAVE)


def _seconds_or_zero(value: str) -> float:
    return 0.0 if value.strip() in ("0", "0.0") else _autosave_seconds(value)


def _path_or_none(value: str) -> str | None:
    return _no_nul(value.strip()) or None


def _env(value: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in value.splitlines():
        if not line.strip():
            continue
        name, sep, val = line.partition("=")
        name = name.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError("one 'NAME = value' a line")
        if "\0" in val:
            raise ValueError("one 'NAME = value' a line, without NUL bytes")
        env[name] = val.strip()
    return env


def _url_path(value: str) -> str | None:
    path = value.strip()
    if path and not path.startswith("/"):
        raise ValueError("a path starting with '/', or nothing")
    if path and not re.fullmatch(r"[!-~]*", path):
        raise ValueError("a URL path without spaces or control characters (%-encode them)")
    return path or None


def _method(value: str) -> str:
    method = value.strip().upper()
    if not re.fullmatch(r"[A-Z]+", method):
        raise ValueError("an HTTP method such as POST")
    return method


def _signal(value: str) -> signal.Signals:
    name = value.strip().upper().removeprefix("SIG")
    try:
        return signal.Signals["SIG" + name]
    except KeyError:
        raise ValueError("a signal name such as TERM, INT, QUIT or HUP") from None


def _reports(value: str) -> tuple[str, ...]:
    names = tuple(n for n in re.split(r"[\s,]+", value.strip()) if n)
    bad = [n for n in names if n not in REPORTS]
    if bad:
        raise ValueError("report names among " + ", ".join(REPORTS))
    return names


def _remotes(value: str) -> tuple[str, ...]:
    urls = tuple(u for u in re.split(r"[\s,]+", value.strip()) if u)
    for url in urls:
        if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", url) or url.endswith(":"):
            raise ValueError("agent URLs such as https://api-1:8765, comma- or line-separated")
    return tuple(url.rstrip("/") for url in urls)


def _boolean(value: str) -> bool:
    word = value.strip().lower()
    if word in ("true", "yes", "on", "1"):
        return True
    if word in ("false", "no", "off", "0"):
        return False
    raise ValueError("true or false")


def _contexts(value: str) -> str:
    choice = value.strip().lower()
    if choice not in CONTEXTS:
        raise ValueError("off or test")
    return choice


def _core(value: str) -> str:
    choice = value.strip().lower()
    if choice not in CORES:
        raise ValueError(", ".join(CORES))
    return choice


def _lost_data(value: str) -> str:
    choice = value.strip().lower()
    if choice not in LOST_DATA:
        raise ValueError("fail or warn")
    return choice


@dataclass(frozen=True)
class Key:
    """One ``[servercov]`` key: how to parse it, its default, what it means."""

    name: str
    parse: Callable[[str], Any]
    default: str | None
    meaning: str


KEYS: tuple[Key, ...] = (
    Key("command", _command, None,
        "how to start the server, split like a shell line (`shlex`) but run without a shell; "
        "placeholders `{python}` (the running interpreter), `{host}`, `{port}`, `{url}`; "
        "optional only with `remotes`"),
    Key("host", _host, "127.0.0.1", "where the server listens and is reached"),
    Key("port", _port, "0", "0 = a free port chosen per run"),
    Key("url", _url, DEFAULT_URL, "base URL handed to the tests; placeholders `{host}` "
        "and `{port}`; with an IPv6 `host` the default puts it in brackets"),
    Key("cwd", _path_or_none, "", "working directory of the server (default: the rcfile's folder); "
        "relative paths in the rcfile stay relative to the rcfile's folder"),
    Key("env", _env, "", "extra environment for the server, one `NAME = value` a line"),
    Key("ready_path", _url_path, "", "if set, ready means this path answers with a status < 500; "
        "else ready means the port accepts a connection"),
    Key("startup_timeout", _seconds, "30", "seconds to wait for ready"),
    Key("shutdown_path", _url_path, "",
        "path called at the end (method `shutdown_method`, with header "
        "`X-Servercov-Token: <SERVERCOV_TOKEN>`); blank = stop by signal only"),
    Key("shutdown_method", _method, "POST", "HTTP method of the shutdown call"),
    Key("stop_signal", _signal, "TERM",
        "signal sent to the server's process group if the shutdown path is absent, fails, "
        "or the server is still alive after `shutdown_timeout`"),
    Key("shutdown_timeout", _seconds, "15",
        "seconds allowed for each stop step before escalating (path, stop_signal, KILL)"),
    Key("log", _path_or_none, "", "file that receives the server's stdout and stderr "
        "(else their tail is kept in memory and shown on failure)"),
    Key("reports", _reports, "term, html",
        "any of term, term-missing, html, xml, json, lcov; output places come from "
        "coverage's own sections"),
    Key("autosave", _seconds_or_zero, "0",
        "seconds between automatic saves inside each server process (0 = off)"),
    Key("contexts", _contexts, "off",
        "`test`: server-side lines are recorded under the id of the test that sent the request "
        "(each server process then runs one request at a time)"),
    Key("core", _core, "auto",
        "coverage core in the server processes: `auto` (sys.monitoring on 3.12+ where the "
        "effective config allows it, else the C tracer; the user's own `[run] core` or "
        "`COVERAGE_CORE` wins), `ctrace`, `sysmon`, `pytrace`"),
    Key("lost_data", _lost_data, "fail",
        "what a measured process that ran code but left no readable data does to the run: "
        "`fail` (the run fails, exit status 3 for `servercov`) or `warn` (named on a "
        "`servercov:` line only)"),
    Key("remotes", _remotes, "",
        "agents to collect from (`servercov serve --control` on other hosts), comma- or "
        "line-separated URLs; with `remotes` and no `command`, nothing is started locally"),
    Key("remote_stop", _boolean, "true",
        "at the end of a run against `remotes`: `true` stops each agent's server (`/stop`), "
        "`false` only snapshots it"),
)
KEYS_BY_NAME = {key.name: key for key in KEYS}


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

    @property
    def folder(self) -> Path:
        """Return the rcfile's folder, the base of every relative path in it."""
        return self.rcfile.parent


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


def parse_values(raw: Mapping[str, str], *, origin: str,
                 section: str = SECTION) -> dict[str, Any]:
    """Parse raw strings by the key table; refuse unknown keys and bad values."""
    values: dict[str, Any] = {}
    for name, text in raw.items():
        key = KEYS_BY_NAME.get(name.replace("-", "_"))
        if key is None:
            raise ConfigError(f"{origin}: [{section}] {name}: unknown key "
                              f"(expected one of: {', '.join(KEYS_BY_NAME)})")
        try:
            values[key.name] = key.parse(text)
        except ValueError as exc:
            raise ConfigError(f"{origin}: [{section}] {key.name}: expected {exc}, "
                              f"got {text.strip()!r}") from None
    return values


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
    for raw, origin, named in ((read_section(rcfile), str(rcfile), section),
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


def _checked_url(template: str, host: str, origin: str) -> str:
    """Return the url template, bracketing an IPv6 host in the default; refuse a bad URL."""
    if template == DEFAULT_URL and ":" in host:
        template = "http://[{host}]:{port}"
    try:
        parts = urllib.parse.urlsplit(template.format(host=host, port=1))
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


def key_table() -> str:
    """Return the README's Markdown table of ``[servercov]`` keys, made from :data:`KEYS`."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for key in KEYS:
        default = "—" if key.default is None else (f"`{key.default}`" if key.default else "none")
        rows.append(f"| {key.name} | {default} | {key.meaning} |")
    return "\n".join(rows)
