"""Where the rcfile is found: .apirc, .coveragerc, setup.cfg, tox.ini, pyproject.toml."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from nose2_servercov.engine import data
from nose2_servercov.engine.config import find_rcfile, load_config
from nose2_servercov.errors import ConfigError

PYPROJECT = """
[project]
name = "myapi"

[tool.coverage.run]
branch = true
source = ["myapi"]

[tool.coverage.html]
directory = "cover"

[tool.servercov]
command = ["{python}", "-m", "myapi.server", "--port", "{port}"]
ready_path = "/health/"
startup_timeout = 5
reports = ["term", "html"]
env = {DEBUG = "1", DB = "sqlite://"}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def test_pyproject_alone_is_found_and_read_as_coverage_reads_its_own_tables(tmp_path):
    write(tmp_path, "pyproject.toml", PYPROJECT)
    rcfile = find_rcfile(start=tmp_path)
    assert rcfile == (tmp_path / "pyproject.toml").resolve()
    config = load_config(rcfile)
    assert config.command == ["{python}", "-m", "myapi.server", "--port", "{port}"]
    assert (config.ready_path, config.startup_timeout) == ("/health/", 5.0)
    assert config.reports == ("term", "html")
    assert config.env == {"DEBUG": "1", "DB": "sqlite://"}
    assert config.cwd == tmp_path.resolve()
    settings = data.server_settings(rcfile)  # coverage's own [tool.coverage.*] tables
    assert settings.branch is True
    assert settings.html_dir == str(tmp_path.resolve() / "cover")


def test_search_order_skips_files_without_a_servercov_section(tmp_path):
    write(tmp_path, "pyproject.toml", PYPROJECT)
    write(tmp_path, "setup.cfg", "[metadata]\nname = myapi\n")  # no section: skipped
    write(tmp_path, ".coveragerc", "[run]\nbranch = True\n")      # no section: skipped
    assert find_rcfile(start=tmp_path).name == "pyproject.toml"
    write(tmp_path, "tox.ini", "[coverage:servercov]\ncommand = python tox.py\n")
    assert find_rcfile(start=tmp_path).name == "tox.ini"
    write(tmp_path, "setup.cfg", "[coverage:run]\nbranch = True\n\n"
                                 "[coverage:servercov]\ncommand = python setup.py\n")
    assert find_rcfile(start=tmp_path).name == "setup.cfg"
    assert load_config(tmp_path / "setup.cfg").command == ["python", "setup.py"]
    write(tmp_path, ".coveragerc", "[servercov]\ncommand = python rc.py\n")
    assert find_rcfile(start=tmp_path).name == ".coveragerc"
    write(tmp_path, ".apirc", "[servercov]\ncommand = python api.py\n")
    assert find_rcfile(start=tmp_path).name == ".apirc"


def test_no_rcfile_message_names_the_flag_of_the_front_end(tmp_path):
    write(tmp_path, "pyproject.toml", "[project]\nname = 'x'\n")
    with pytest.raises(ConfigError) as caught:
        find_rcfile(start=tmp_path, flag="--servercov-rcfile")
    message = str(caught.value)
    assert "\n" not in message
    assert "[tool.servercov] in pyproject.toml" in message
    assert message.endswith("name the file with --servercov-rcfile FILE")
    with pytest.raises(ConfigError, match=r"with --rcfile FILE$"):
        find_rcfile(start=tmp_path)


def test_bad_pyproject_values_name_the_table_and_the_key(tmp_path):
    write(tmp_path, "pyproject.toml", "[tool.servercov]\ncommand = 'x'\nport = 'abc'\n")
    with pytest.raises(ConfigError, match=r"pyproject.toml: \[tool.servercov\] port: expected "
                                          r"a whole number"):
        load_config(tmp_path / "pyproject.toml")
    write(tmp_path, "pyproject.toml", "[tool.servercov]\ncommand = 'x'\nenv = [{a = 1}]\n")
    with pytest.raises(ConfigError, match=r"\[tool.servercov\] env: expected a string"):
        load_config(tmp_path / "pyproject.toml")
    write(tmp_path, "pyproject.toml", "[tool.servercov\n")
    with pytest.raises(ConfigError, match="cannot be read as TOML"):
        find_rcfile(start=tmp_path)
    write(tmp_path, "pyproject.toml", "[tool.servercov]\nport = 1\n")
    with pytest.raises(ConfigError, match=r"\[tool.servercov\] command: expected how to start"):
        load_config(tmp_path / "pyproject.toml")
