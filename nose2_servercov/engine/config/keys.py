"""The ``[servercov]`` key table: every key declared once, with the parser of its value.

Each key is declared once in :data:`KEYS` (name, parser, default, meaning);
validation (:func:`parse_values`), defaults and the README's key table
(:func:`key_table`) all come from that one table, so they cannot drift apart.
Finding and reading the rcfile is :mod:`.rcfile`'s job; the validated result,
:class:`~nose2_servercov.engine.config.ServerConfig`, is :mod:`.config`'s.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import shlex
import signal
import string
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nose2_servercov.engine.config import cores, reports
from nose2_servercov.errors import ConfigError

SECTION = "servercov"
PLACEHOLDERS = ("python", "host", "port", "url")
URL_PLACEHOLDERS = ("host", "port")
DEFAULT_URL = "http://{host}:{port}"
# {NAME_port}, {NAME_host}, {NAME_url} of a [servercov:NAME] section, allowed
# wherever a placeholder is; the section named is checked once all are read.
SECTION_PLACEHOLDER = re.compile(r"([A-Za-z0-9_-]+)_(port|host|url)")
# Upper bounds keep every wait finite and within what the OS accepts: a socket
# timeout of 1e20 s overflows time_t (issue 8).
MAX_TIMEOUT = 3600.0
MAX_AUTOSAVE = 24 * 3600.0
REPORTS = reports.NAMES  # the report kinds' own table says which exist
CONTEXTS = ("off", "test")
CORES = cores.CHOICES
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
        if name not in allowed and not SECTION_PLACEHOLDER.fullmatch(name):
            raise ValueError(f"placeholders among {known} (use {{{{ }}}} for a brace), "
                             "or {NAME_port}, {NAME_host}, {NAME_url} of a section")
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


class Misspelled(ValueError):
    """A bad value close to a good one: ``suggestion`` is what was surely meant."""

    def __init__(self, expected: str, suggestion: str) -> None:
        super().__init__(expected)
        self.suggestion = suggestion


def closest(word: str, choices: Sequence[str]) -> str | None:
    """Return the choice ``word`` was surely meant to be (difflib's judgement), None if none."""
    matches = difflib.get_close_matches(word.lower(), choices, n=1, cutoff=0.75)
    return matches[0] if matches else None


def _reports(value: str) -> tuple[str, ...]:
    names = tuple(n for n in re.split(r"[\s,]+", value.strip()) if n)
    bad = [n for n in names if n not in REPORTS]
    if bad:
        expected = "report names among " + ", ".join(REPORTS)
        suggestion = closest(bad[0], REPORTS)
        raise Misspelled(expected, suggestion) if suggestion else ValueError(expected)
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
        f"any of {', '.join(REPORTS)}; output places come from coverage's own sections"),
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


def parse_values(raw: Mapping[str, str], *, origin: str,
                 section: str = SECTION) -> dict[str, Any]:
    """Parse raw strings by the key table; refuse unknown keys and bad values."""
    values: dict[str, Any] = {}
    for name, text in raw.items():
        key = KEYS_BY_NAME.get(name.replace("-", "_"))
        if key is None:
            suggestion = closest(name.replace("-", "_"), tuple(KEYS_BY_NAME))
            if suggestion:
                raise ConfigError(f"{origin}: [{section}] {name}: unknown key; did you mean "
                                  f"{suggestion}? (servercov keys lists every key)")
            raise ConfigError(f"{origin}: [{section}] {name}: unknown key "
                              f"(expected one of: {', '.join(KEYS_BY_NAME)})")
        try:
            values[key.name] = key.parse(text)
        except Misspelled as exc:
            raise ConfigError(f"{origin}: [{section}] {key.name}: expected {exc}, "
                              f"got {text.strip()!r}; did you mean {exc.suggestion}?") from None
        except ValueError as exc:
            raise ConfigError(f"{origin}: [{section}] {key.name}: expected {exc}, "
                              f"got {text.strip()!r}") from None
    return values


def key_table(keys: Iterable[Key] | None = None) -> str:
    """Return a README Markdown table of ``keys`` (default :data:`KEYS`), made from the table."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for key in KEYS if keys is None else keys:
        default = "—" if key.default is None else (f"`{key.default}`" if key.default else "none")
        rows.append(f"| {key.name} | {default} | {key.meaning} |")
    return "\n".join(rows)


def key_reference(width: int = 79, *, heading: str | None = None,
                  keys: Iterable[Key] | None = None) -> str:
    """Return every key with its default and meaning as plain text, for ``servercov keys``.

    The same table as the README's, made for a terminal: no Markdown, each
    meaning wrapped and indented under its key.  Sections pass their own
    ``heading`` and ``keys``.
    """
    if heading is None:
        heading = (f"The [{SECTION}] keys of the rcfile ([coverage:{SECTION}] in setup.cfg or "
                   f"tox.ini, [tool.{SECTION}] in pyproject.toml); the nose2 config's "
                   f"[{SECTION}] section, if any, wins over the rcfile.")
    lines = [*textwrap.wrap(heading, width), ""]
    for key in KEYS if keys is None else keys:
        default = ("required" if key.default is None
                   else f"default: {key.default or 'none'}")
        lines.append(f"{key.name}  ({default})")
        lines += textwrap.wrap(key.meaning.replace("`", ""), width, break_on_hyphens=False,
                               initial_indent="    ", subsequent_indent="    ")
    return "\n".join(lines) + "\n"
