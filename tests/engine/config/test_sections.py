"""``[servercov:NAME]`` sections: their keys, ports, placeholders and every bad input refused."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nose2_servercov.engine.config import SECTION_KEYS, load_config
from nose2_servercov.engine.config.sections import PORT_NONE, section_key_table
from nose2_servercov.errors import ConfigError

MAIN = "[servercov]\ncommand = {python} -m app --port {port}\n"
REDIS = """
[servercov:redis]
command = redis-server --port {port} --save "" --appendonly no
measured = false
ready_output = Ready to accept connections
"""


def rcfile(tmp_path: Path, text: str, name: str = ".apirc") -> Path:
    path = tmp_path / name
    path.write_text("[run]\nparallel = True\n" + textwrap.dedent(text))
    return path


def refusal(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_sections_are_read_in_file_order_with_their_defaults(tmp_path):
    path = rcfile(tmp_path, REDIS + textwrap.dedent("""
        [servercov:worker]
        command = {python} -m worker
        env =
            BROKER = redis://127.0.0.1:{redis_port}/0
        stop_signal = INT
        """) + MAIN)
    config = load_config(path)
    redis, worker = config.sections
    assert (redis.name, worker.name) == ("redis", "worker")
    assert redis.port == 0 and redis.has_port  # its command names {port}: a free one
    assert not redis.measured and redis.ready_output is not None
    assert redis.ready_output.search("* Ready to accept connections tcp")
    assert worker.port == PORT_NONE and not worker.has_port
    assert worker.measured and worker.ready_output is None and worker.ready_path is None
    assert worker.env == {"BROKER": "redis://127.0.0.1:{redis_port}/0"}
    assert worker.stop_signal is signal.SIGINT
    assert (worker.startup_timeout, worker.shutdown_timeout) == (30.0, 15.0)
    assert worker.cwd == tmp_path.resolve() and worker.log is None
    assert worker.variable_suffix == "WORKER"


def test_a_file_without_sections_has_none(tmp_path):
    assert load_config(rcfile(tmp_path, MAIN)).sections == ()


def test_the_main_server_may_name_any_section_in_command_env_and_url(tmp_path):
    path = rcfile(tmp_path, REDIS + textwrap.dedent("""
        [servercov:api-2]
        command = {python} -m api2 --port {port}
        [servercov]
        command = {python} -m app --port {port} --redis {redis_url} --other {api-2_port}
        env =
            OTHER = {api-2_url}
            LITERAL = {not a placeholder}
        url = http://{host}:{port}
        """))
    config = load_config(path)
    assert config.command[-1] == "{api-2_port}"
    assert config.sections[1].name == "api-2" and config.sections[1].variable_suffix == "API_2"


def test_a_fixed_port_and_a_ready_path(tmp_path):
    path = rcfile(tmp_path, textwrap.dedent("""
        [servercov:svc]
        command = {python} -m svc
        port = 18123
        ready_path = /health
        shutdown_path = /stop
        log = logs/svc.log
        cwd = sub
        """) + MAIN)
    (svc,) = load_config(path).sections
    assert (svc.port, svc.ready_path, svc.shutdown_path) == (18123, "/health", "/stop")
    assert svc.log == (tmp_path / "logs" / "svc.log").resolve()
    assert svc.cwd == (tmp_path / "sub").resolve()


def test_sections_in_pyproject_toml(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text(textwrap.dedent("""
        [tool.servercov]
        command = "{python} -m app --port {port} {redis_port}"
        env = {A = "1"}

        [tool.servercov.redis]
        command = ["redis-server", "--port", "{port}"]
        measured = false
        """))
    config = load_config(path)
    assert config.env == {"A": "1"}
    assert [(s.name, s.command, s.measured) for s in config.sections] == [
        ("redis", ["redis-server", "--port", "{port}"], False)]


def test_setup_cfg_sections_take_the_coverage_prefix(tmp_path):
    path = rcfile(tmp_path, """
        [coverage:servercov:redis]
        command = redis-server --port {port}
        [coverage:servercov]
        command = {python} -m app --port {port} {redis_port}
        """, name="setup.cfg")
    assert [s.name for s in load_config(path).sections] == ["redis"]


BAD = [
    ("unknown key", "[servercov:w]\ncommand = w\ncolour = blue\n",
     "[servercov:w] colour: unknown key"),
    ("near miss", "[servercov:w]\ncommand = w\nready_outptu = x\n",
     "[servercov:w] ready_outptu: unknown key; did you mean ready_output?"),
    ("run-wide key", "[servercov:w]\ncommand = w\nreports = html\n",
     "[servercov:w] reports: a key of [servercov] only"),
    ("bad name", "[servercov:my worker]\ncommand = w\n",
     "[servercov:my worker]: expected a section name of letters, digits, '_' and '-'"),
    ("empty name", "[servercov:]\ncommand = w\n", "[servercov:]: expected a section name"),
    ("no command", "[servercov:w]\nmeasured = false\n",
     "[servercov:w] command: expected how to start this process"),
    ("unknown section", "[servercov:w]\ncommand = w {cache_port}\n",
     "[servercov:w] command: {cache_port} names no section: expected [servercov:cache]"),
    ("unknown section in env", "[servercov:w]\ncommand = w\nenv =\n  B = {cache_url}\n",
     "[servercov:w] env: {cache_url} names no section"),
    ("unknown section in main", "",
     "[servercov] command: {nope_port} names no section"),
    ("section without a port", "[servercov:a]\ncommand = a\n[servercov:w]\ncommand = w {a_port}\n",
     "[servercov:w] command: {a_port}: [servercov:a] has no port: set 'port = 0'"),
    ("ready_path without a port", "[servercov:w]\ncommand = w\nready_path = /health\n",
     "[servercov:w] ready_path: needs a port to call"),
    ("bad regex", "[servercov:w]\ncommand = w\nready_output = ready (\n",
     "[servercov:w] ready_output: expected a Python regular expression (missing )"),
    ("same fixed port", "[servercov:a]\ncommand = a\nport = 18001\n"
                        "[servercov:b]\ncommand = b\nport = 18001\n",
     "[servercov:b] port: 18001 is the port of [servercov:a] too"),
    ("main's fixed port", "[servercov:a]\ncommand = a\nport = 18002\n",
     "[servercov:a] port: 18002 is the port of [servercov] too"),
    ("log is a folder", "[servercov:w]\ncommand = w\nlog = .\n",
     "[servercov:w] log: expected a file for its output, got the folder"),
    ("bad measured", "[servercov:w]\ncommand = w\nmeasured = maybe\n",
     "[servercov:w] measured: expected true or false, got 'maybe'"),
    ("bad placeholder", "[servercov:w]\ncommand = w {portt}\n",
     "[servercov:w] command: expected placeholders among {python}, {host}, {port}, {url}"),
]


@pytest.mark.parametrize(("text", "message"), [case[1:] for case in BAD],
                         ids=[case[0] for case in BAD])
def test_bad_input_is_refused_in_one_line_naming_file_section_and_key(tmp_path, text, message):
    main = MAIN
    if "main" in message or "nope" in message:
        main = "[servercov]\ncommand = {python} -m app --port {port} {nope_port}\n"
    if "main's" in text or "[servercov] too" in message:
        main = "[servercov]\ncommand = {python} -m app --port {port}\nport = 18002\n"
    path = tmp_path / ".apirc"
    path.write_text("[run]\nparallel = True\n" + text + main)
    assert refusal(path).startswith(f"{path}: {message}")


def test_servercov_keys_lists_every_section_key():
    shown = subprocess.run([sys.executable, "-m", "nose2_servercov", "keys"],
                           capture_output=True, text=True, check=True).stdout
    assert "[servercov:NAME]" in shown
    tail = shown.split("[servercov:NAME]", 1)[1]
    for key in SECTION_KEYS:
        assert f"\n{key.name}  (" in tail


def test_readme_section_key_table_is_the_generated_one():
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    shown = readme.split("<!-- section-key-table:")[1].split("\n", 1)[1]
    assert shown.split("\n<!-- end section-key-table -->")[0] == section_key_table()
