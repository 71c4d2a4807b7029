"""Parsing the [servercov] section: defaults, every key's bad value, overrides, discovery."""

from __future__ import annotations

import signal
import textwrap
from pathlib import Path

import pytest

from nose2_servercov.engine import data
from nose2_servercov.engine.config import KEYS, find_rcfile, key_table, load_config, preflight
from nose2_servercov.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]


def rcfile(tmp_path: Path, body: str, name: str = ".apirc") -> Path:
    path = tmp_path / name
    path.write_text("[run]\nparallel = True\n\n[servercov]\n" + textwrap.dedent(body))
    return path


def test_defaults_come_from_the_key_table(tmp_path):
    config = load_config(rcfile(tmp_path, "command = {python} -m app --port {port}\n"))
    assert config.command == ["{python}", "-m", "app", "--port", "{port}"]
    assert (config.host, config.port, config.url) == ("127.0.0.1", 0, "http://{host}:{port}")
    assert config.cwd == tmp_path.resolve()
    assert config.env == {}
    assert config.ready_path is None and config.shutdown_path is None
    assert (config.startup_timeout, config.shutdown_timeout) == (30.0, 15.0)
    assert config.stop_signal is signal.SIGTERM
    assert config.shutdown_method == "POST"
    assert config.reports == ("term", "html")
    assert (config.autosave, config.contexts, config.log) == (0.0, "off", None)


def test_every_key_parses(tmp_path):
    config = load_config(rcfile(tmp_path, """
        command = "{python}" serve.py --bind '{host}:{port}'
        host = ::1
        port = 8123
        url = http://[{host}]:{port}/api
        cwd = server
        env =
            DATABASE_URL = sqlite:///tmp/x.db
            DEBUG=1
        ready_path = /health/
        startup_timeout = 2.5
        shutdown_path = /stop/
        shutdown_method = delete
        stop_signal = sigint
        shutdown_timeout = 1
        log = logs/server.log
        reports = term-missing html,xml json lcov
        autosave = 0.5
        contexts = test
        """))
    assert config.command == ["{python}", "serve.py", "--bind", "{host}:{port}"]
    assert config.port == 8123
    assert config.cwd == tmp_path.resolve() / "server"
    assert config.env == {"DATABASE_URL": "sqlite:///tmp/x.db", "DEBUG": "1"}
    assert config.shutdown_method == "DELETE"
    assert config.stop_signal is signal.SIGINT
    assert config.log == tmp_path.resolve() / "logs" / "server.log"
    assert config.reports == ("term-missing", "html", "xml", "json", "lcov")
    assert (config.autosave, config.contexts) == (0.5, "test")


@pytest.mark.parametrize(("body", "message"), [
    ("port = 70000", "port: expected a whole number from 0 to 65535 (0 = a free port), "
                     "got '70000'"),
    ("startup_timeout = soon", "startup_timeout: expected a number of seconds greater than 0 "
                               "and at most 3600, got 'soon'"),
    ("shutdown_timeout = 0", "shutdown_timeout: expected a number of seconds greater than 0"),
    ("autosave = -1", "autosave: expected a number of seconds greater than 0 and at most 86400, "
                    "got '-1'"),
    ("stop_signal = TERMINATE", "stop_signal: expected a signal name such as TERM"),
    ("reports = html pdf", "reports: expected report names among term, term-missing, html"),
    ("contexts = request", "contexts: expected off or test, got 'request'"),
    ("ready_path = health", "ready_path: expected a path starting with '/', or nothing"),
    ("env = not a pair", "env: expected one 'NAME = value' a line"),
    ("shutdown_method = P0ST", "shutdown_method: expected an HTTP method such as POST"),
    ("colour = blue", "colour: unknown key (expected one of: command, host"),
])
def test_bad_values_name_file_section_key_and_expectation(tmp_path, body, message):
    path = rcfile(tmp_path, "command = {python} app.py\n" + body + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: [servercov] {message}")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("command", "message"), [
    ("{python} app.py {portt}", "command: expected placeholders among {python}, {host}"),
    ("{python} 'app.py", "command: expected a command line that shlex can split"),
    ("", "command: expected a command line"),
])
def test_bad_commands(tmp_path, command, message):
    with pytest.raises(ConfigError, match="servercov\\] " + message.replace("{", "\\{")):
        load_config(rcfile(tmp_path, f"command = {command}\n"))


def test_a_missing_command_says_how_to_write_one(tmp_path):
    with pytest.raises(ConfigError, match=r"\[servercov\] command: expected how to start"):
        load_config(rcfile(tmp_path, "port = 0\n"))


def test_overrides_win_and_are_validated_under_their_own_name(tmp_path):
    path = rcfile(tmp_path, "command = {python} app.py\nport = 8000\nreports = html\n")
    config = load_config(path, {"port": "9000", "reports": "xml"})
    assert (config.port, config.reports) == (9000, ("xml",))
    with pytest.raises(ConfigError, match=r"^nose2 config: \[servercov\] port: expected"):
        load_config(path, {"port": "x"})


def test_rcfile_discovery_prefers_apirc_then_coveragerc(tmp_path):
    with pytest.raises(ConfigError, match=r"no rcfile: none of \.apirc, \.coveragerc, "):
        find_rcfile(start=tmp_path)
    rcfile(tmp_path, "command = x\n", name=".coveragerc")
    assert find_rcfile(start=tmp_path).name == ".coveragerc"
    rcfile(tmp_path, "command = x\n")
    assert find_rcfile(start=tmp_path).name == ".apirc"
    (tmp_path / "other.ini").touch()
    assert find_rcfile("other.ini", start=tmp_path).name == "other.ini"
    with pytest.raises(ConfigError, match=r"nope\.ini: the rcfile does not exist"):
        find_rcfile("nope.ini", start=tmp_path)


def test_an_unreadable_ini_is_one_line(tmp_path):
    path = tmp_path / ".apirc"
    path.write_text("[servercov\ncommand = x\n")
    with pytest.raises(ConfigError, match="cannot be read as an ini file"):
        load_config(path)


def test_readme_key_table_is_the_generated_one():
    readme = (REPO / "README.md").read_text()
    assert key_table() in readme
    assert len(KEYS) == key_table().count("\n") - 1


# --- did you mean (issue 24) -------------------------------------------------------------------

@pytest.mark.parametrize(("body", "message"), [
    ("ready_pth = /health/", "ready_pth: unknown key; did you mean ready_path? (servercov keys "
                             "lists every key)"),
    ("shutdown-timout = 3", "shutdown-timout: unknown key; did you mean shutdown_timeout? "
                            "(servercov keys lists every key)"),
    ("reports = term, htm", "reports: expected report names among term, term-missing, html, "
                            "xml, json, lcov, got 'term, htm'; did you mean html?"),
    ("reports = term_missing", "reports: expected report names among term, term-missing, "
                               "html, xml, json, lcov, got 'term_missing'; did you mean "
                               "term-missing?"),
])
def test_a_near_miss_gets_the_closest_valid_name(tmp_path, body, message):
    path = rcfile(tmp_path, "command = {python} app.py {port}\n" + body + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: [servercov] {message}"


def test_a_near_miss_in_the_nose2_config_is_named_under_its_origin(tmp_path):
    path = rcfile(tmp_path, "command = {python} app.py {port}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"startup_timeot": "5"})
    assert str(caught.value) == ("nose2 config: [servercov] startup_timeot: unknown key; did you "
                                 "mean startup_timeout? (servercov keys lists every key)")


# --- a command that cannot know its port (issue 24) --------------------------------------------

@pytest.mark.parametrize("command", ["{python} app.py {port}", "{python} app.py --url={url}",
                                     "{python} app.py --bind {host}:{port}"])
def test_a_command_told_its_port_passes_the_check_before_start(tmp_path, command):
    config = load_config(rcfile(tmp_path, f"command = {command}\n"))
    preflight.check_before_start(config, data.server_settings(config.rcfile))


@pytest.mark.parametrize("body", ["port = 8000", "port = 8000\nready_path = /health/"])
def test_a_command_without_port_is_fine_with_a_fixed_port(tmp_path, body):
    config = load_config(rcfile(tmp_path, f"command = {{python}} app.py\n{body}\n"))
    preflight.check_before_start(config, data.server_settings(config.rcfile))


@pytest.mark.parametrize(("name", "section", "command"), [
    (".apirc", "[servercov]", "{python} -m app --port 5000"),
    (".apirc", "[servercov]", "{python} app.py {{port}}"),  # an escaped brace is no placeholder
    ("pyproject.toml", "[tool.servercov]", "{python} -m app"),
])
def test_a_command_without_port_or_url_is_refused_with_port_0(tmp_path, name, section, command):
    path = tmp_path / name
    value = repr(command) if name.endswith(".toml") else command
    path.write_text(f"{section}\ncommand = {value}\n")
    config = load_config(path)
    with pytest.raises(ConfigError) as caught:
        preflight.check_before_start(config, data.server_settings(config.rcfile))
    assert str(caught.value) == (
        f"{path.resolve()}: {section} command: expected {{port}} (or {{url}}) in the command: "
        "with port = 0 a free port is chosen per run and the server must be told it, e.g. "
        f"'--port {{port}}'; got {' '.join(config.command)!r}")
