"""Property: whatever an rcfile holds, ``load_config`` refuses it with ConfigError or
returns a config every later step can use without a ValueError (issue 8: fuzzing
1,500 rcfiles once let 67 other exceptions escape).

Rcfiles are generated from the KEYS table (real keys, good values, values just
outside the rules) plus garbage: any text, any bytes, NULs, braces, stray
section headers, invalid UTF-8.
"""

from __future__ import annotations

import os
import sys
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from nose2_servercov.engine.config import KEYS, ServerConfig, load_config
from nose2_servercov.errors import ConfigError

KEY_NAMES = [key.name for key in KEYS]
# Values of each key that load, and values just past one of its rules.
GOOD = {
    "command": ["{python} serve.py {port}", "{python} -c pass", "{{python}} x",
                "'{host}:{port}' {url}", "no-such-command-servercov"],
    "host": ["127.0.0.1", "localhost", "::1", "fe80::1%lo", "no.such.host.invalid",
             "::ffff:127.0.0.1"],
    "port": ["0", "65535", " 80 ", "8123"],
    "url": ["http://{host}:{port}", "http://[{host}]:{port}/api", "https://{host}",
            "http://{host}:{port}/{{x}}", "http://127.0.0.1:{port}"],
    "cwd": [".", "sub", "/", "../..", ""],
    "env": ["A = 1", "A=1\nB = 2", "A == b", "A ="],
    "ready_path": ["/health/", "/%20", ""],
    "shutdown_path": ["/servercov/shutdown/", "/%", ""],
    "shutdown_method": ["POST", "delete"],
    "stop_signal": ["TERM", "sigint", "KILL", "HUP"],
    "startup_timeout": ["30", "1e-300", "3600", "0.5"],
    "shutdown_timeout": ["15", "0.001", "1_0"],
    "log": ["server.log", "logs/x.log", "/dev/null", ""],
    "reports": ["term, html", "", "term term", "xml,,json"],
    "autosave": ["0", "0.0", "0.5", "86400"],
    "contexts": ["off", "test", "TEST"],
    "core": ["auto", "ctrace", "sysmon", "pytrace", " SysMon "],
    "lost_data": ["fail", "warn", " WARN "],
    "remotes": ["", "https://api-1:8765", "http://10.0.0.2:8765/, http://[::1]:8765",
                "https://a:1\nhttps://b:2"],
    "remote_stop": ["true", "false", "No", "1"],
}
BAD = {
    "command": ["{port:d} x", "{port!r}", "{x}", "{", "}", "'unclosed", "a\0b", "{0}",
                "{host.real}", "{port[0]}", "{}", ""],
    "host": ["[::1]", "", "a b", ":::", "1.2.3.4.5:80", "a/b", "h\0"],
    "port": ["65536", "-1", "8o", "1e3", "0x50"],
    "url": ["http://{host}:{port:d}", "{x}", "ftp://{host}", "http://:{port}",
            "http://{host}:99999", "http://{host}:{port}/a b", "http://{host}:{port}\0",
            "//{host}:{port}", "http://[{host}:{port}", "{{host}}", "http://{host}:{port"],
    "cwd": ["a\0b"],
    "env": ["1A = x", "A", "A = b\0c", "= x"],
    "ready_path": ["health", "/a b", "/\x7f"],
    "shutdown_path": ["x", "/\0"],
    "shutdown_method": ["P0ST", "", "GET HEAD"],
    "stop_signal": ["TERMINATE", "9", ""],
    "startup_timeout": ["0", "1e20", "inf", "nan", "-1", "3601"],
    "shutdown_timeout": ["1e20", "", "∞"],
    "log": [".", "/", "a\0b"],
    "reports": ["pdf"],
    "autosave": ["-0", "1e20", "86401", "nan"],
    "contexts": ["request", ""],
    "core": ["fast", "", "c-trace"],
    "lost_data": ["ignore", "", "fail, warn"],
    "remotes": ["api-1:8765", "ftp://x:1", "http://", "https://a:"],
    "remote_stop": ["maybe", "", "2"],
}

COVERAGE_KEYS = [(b"[run]", b"data_file"), (b"[run]", b"source"), (b"[run]", b"branch"),
                 (b"[run]", b"plugins"), (b"[run]", b"concurrency"), (b"[run]", b"patch"),
                 (b"[run]", b"core"), (b"[report]", b"fail_under"), (b"[report]", b"precision"),
                 (b"[report]", b"exclude_lines"), (b"[html]", b"directory"),
                 (b"[json]", b"output"), (b"[paths]", b"source")]
garbage_text = st.text(st.characters(codec="utf-8"), max_size=40)
garbage_bytes = st.binary(max_size=40)


def encode(text: str) -> bytes:
    # A multi-line value continues on indented lines, as configparser wants it.
    return text.replace("\n", "\n    ").encode("utf-8", "surrogatepass")


@st.composite
def near_rcfiles(draw: st.DrawFn) -> bytes:
    """Real keys only, each value good four times in five: many of these load."""
    names = ["command", *draw(st.lists(st.sampled_from(KEY_NAMES), max_size=8, unique=True))]
    lines = [b"[run]", b"parallel = True", b"[servercov]"]
    for name in dict.fromkeys(names):
        pool = BAD[name] if draw(st.integers(0, 4)) == 0 else GOOD[name]
        lines.append(name.encode() + b" = " + encode(draw(st.sampled_from(pool))))
    return b"\n".join(lines) + b"\n"


@st.composite
def values(draw: st.DrawFn, key: str) -> bytes:
    choice = draw(st.integers(0, 9))
    if choice < 6 and key in GOOD:
        return encode(draw(st.sampled_from(GOOD[key] + BAD[key])))
    if choice < 8:
        return encode(draw(garbage_text))
    return draw(garbage_bytes)


@st.composite
def garbage_rcfiles(draw: st.DrawFn) -> bytes:
    """Real and made-up keys, any text, any bytes, stray headers and lines."""
    lines = [draw(st.sampled_from([b"[servercov]", b"[run]\nparallel = True\n[servercov]",
                                   b"[DEFAULT]\nx = 1\n[servercov]", b""]))]
    keys = st.one_of(st.sampled_from(KEY_NAMES), st.sampled_from(KEY_NAMES).map(
        lambda name: name.replace("_", "-").upper()), garbage_text)
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.integers(0, 19))
        if kind == 0:
            lines.append(draw(garbage_bytes))
        elif kind == 1:
            lines.append(draw(st.sampled_from([b"[servercov]", b"[other]", b"[servercov",
                                               b"  indented", b"\xff\xfe", b"key"])))
        elif kind == 2:  # coverage's own sections, which the server's settings come from
            section, key = draw(st.sampled_from(COVERAGE_KEYS))
            lines += [section, key + b" = " + draw(values("")), b"[servercov]"]
        else:
            key = draw(keys)
            separator = draw(st.sampled_from([b" = ", b"=", b": "]))
            lines.append(encode(key) + separator + draw(values(key)))
    return b"\n".join(lines) + b"\n"


rcfiles = st.one_of(near_rcfiles(), garbage_rcfiles())


@st.composite
def overrides(draw: st.DrawFn) -> dict[str, str]:
    chosen = draw(st.lists(st.sampled_from(KEY_NAMES), max_size=3, unique=True))
    return {name: draw(st.one_of(st.sampled_from(GOOD[name] + BAD[name]), garbage_text))
            for name in chosen}


def assert_usable(config: ServerConfig) -> None:
    """Do with a loaded config what the session does: none of it may raise."""
    port = config.port or 1
    url = config.url.format(host=config.host, port=port)
    parts = urllib.parse.urlsplit(url)
    assert parts.scheme in ("http", "https") and parts.hostname
    assert parts.port is None or 0 < parts.port <= 65535
    for word in config.command:
        formatted = word.format(python=sys.executable, host=config.host, port=str(port),
                                url=url)
        assert "\0" not in formatted
    assert all("\0" not in f"{name}={value}" for name, value in config.env.items())
    assert 0 < config.startup_timeout <= 3600 and 0 < config.shutdown_timeout <= 3600
    assert config.log is None or not config.log.is_dir()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Return a folder for the generated rcfiles: in memory where there is one.

    A thousand rewrites of a file on a disk the other test runs keep busy took
    ten times longer than the parsing itself.
    """
    memory = Path("/dev/shm")
    if memory.is_dir() and os.access(memory, os.W_OK):
        with tempfile.TemporaryDirectory(prefix="servercov-fuzz-", dir=memory) as folder:
            yield Path(folder)
    else:
        yield tmp_path_factory.mktemp("config-fuzz")


@settings(max_examples=1000, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(content=rcfiles, extra=st.one_of(st.just({}), overrides()))
def test_load_config_raises_only_config_error(scratch, content, extra):
    path = scratch / ".apirc"
    path.write_bytes(content)
    try:
        config = load_config(path, extra)
    except ConfigError as exc:
        assert "\n" not in str(exc), "a ConfigError is one line"
        event("refused")
        return
    event("loaded")
    assert_usable(config)
