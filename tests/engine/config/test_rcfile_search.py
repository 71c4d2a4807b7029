"""Where the rcfile is found: .apirc, .coveragerc, setup.cfg, tox.ini, pyproject.toml."""

from __future__ import annotations

import tempfile
import textwrap
from pathlib import Path

import pytest

from nose2_servercov.engine import data
from nose2_servercov.engine.config import find_rcfile, folders_to_search, load_config
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


# --- the search goes up to the project's top (issue 24) ----------------------------------------

APIRC = "[servercov]\ncommand = {python} serve.py {port}\n"


def test_a_subfolder_finds_the_rcfile_of_the_folder_holding_git(tmp_path):
    (tmp_path / ".git").mkdir(exist_ok=True)  # conftest made it already
    write(tmp_path, ".apirc", APIRC)
    tests = tmp_path / "tests" / "api"
    tests.mkdir(parents=True)
    assert find_rcfile(start=tests) == (tmp_path / ".apirc").resolve()
    write(tests.parent, "tox.ini", "[coverage:servercov]\ncommand = x {port}\n")
    assert find_rcfile(start=tests) == (tests.parent / "tox.ini").resolve()  # the nearest wins


def test_a_git_file_marks_the_top_too(tmp_path):
    """A git worktree or submodule holds a .git file, not a folder."""
    (tmp_path / ".git").rmdir()  # conftest made a folder: a file instead
    (tmp_path / ".git").write_text("gitdir: /elsewhere\n")
    write(tmp_path, "pyproject.toml", PYPROJECT)
    (tmp_path / "tests").mkdir()
    assert find_rcfile(start=tmp_path / "tests") == (tmp_path / "pyproject.toml").resolve()


def test_a_folder_above_the_git_folder_is_never_used(tmp_path):
    write(tmp_path, ".apirc", APIRC)  # another project's, or the home folder's
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    (project / "tests").mkdir()
    with pytest.raises(ConfigError) as caught:
        find_rcfile(start=project / "tests")
    assert str(caught.value) == (
        f"no rcfile: none of .apirc, .coveragerc, setup.cfg, tox.ini, pyproject.toml in "
        f"{project / 'tests'}, {project} has a servercov section ([servercov]; "
        "[coverage:servercov] in setup.cfg or tox.ini; [tool.servercov] in pyproject.toml): "
        "add one, or name the file with --rcfile FILE")


def test_without_git_only_the_current_folder_is_searched():
    # Not in tmp_path: it is a git checkout here (conftest.py), and may lie inside one.
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name).resolve()
        write(folder, ".apirc", APIRC)
        (folder / "tests").mkdir()
        assert not any((above / ".git").exists() for above in [folder, *folder.parents])
        with pytest.raises(ConfigError, match=rf"^{folder / 'tests'}: no rcfile: none of "
                                              r"\.apirc, .* here has a servercov section"):
            find_rcfile(start=folder / "tests")


def test_a_top_given_searches_up_to_it_and_not_beyond(tmp_path):
    """pytest's rootdir: the search stops there, .git or not."""
    write(tmp_path, ".apirc", APIRC)
    root = tmp_path / "root"
    (root / "tests").mkdir(parents=True)
    write(root, "setup.cfg", "[coverage:servercov]\ncommand = x {port}\n")
    assert find_rcfile(start=root / "tests", top=root) == (root / "setup.cfg").resolve()
    (root / "setup.cfg").unlink()
    with pytest.raises(ConfigError, match=r"^no rcfile: none of .* in .*/root/tests, .*/root "
                                          r"has a servercov section"):
        find_rcfile(start=root / "tests", top=root)
    # A rootdir that is not above the current folder: the current folder only.
    assert folders_to_search(root / "tests", top=tmp_path / "elsewhere") == [root / "tests"]


def test_relative_paths_stay_relative_to_the_rcfile_found_above(tmp_path):
    (tmp_path / ".git").mkdir(exist_ok=True)  # conftest made it already
    write(tmp_path, ".apirc", APIRC + "log = logs/server.log\n")
    (tmp_path / "tests").mkdir()
    config = load_config(find_rcfile(start=tmp_path / "tests"))
    assert config.rcfile == (tmp_path / ".apirc").resolve() and config.rcfile.is_absolute()
    assert (config.cwd, config.log) == (tmp_path.resolve(), tmp_path.resolve() / "logs" /
                                        "server.log")


# --- a [servercov...]-like section: did you mean (issue 24) ------------------------------------

@pytest.mark.parametrize(("name", "text", "found", "expected"), [
    (".apirc", "[servercove]\ncommand = x\n", "servercove", "servercov"),
    (".apirc", "[coverage:servercov]\ncommand = x\n", "coverage:servercov", "servercov"),
    ("setup.cfg", "[metadata]\nname = x\n[server_cov]\n", "server_cov", "coverage:servercov"),
    ("tox.ini", "[coverage:servrcov]\n", "coverage:servrcov", "coverage:servercov"),
    ("pyproject.toml", "[tool.servercove]\ncommand = 'x'\n", "tool.servercove",
     "tool.servercov"),
    ("pyproject.toml", "[tool.coverage.servercov]\ncommand = 'x'\n",
     "tool.coverage.servercov", "tool.servercov"),
])
def test_a_misspelled_section_is_named_instead_of_no_rcfile(tmp_path, name, text, found,
                                                            expected):
    path = write(tmp_path, name, text)
    message = f"{path}: [{found}]: not a section servercov reads; did you mean [{expected}]?"
    with pytest.raises(ConfigError) as caught:
        find_rcfile(start=tmp_path)
    assert str(caught.value) == message
    with pytest.raises(ConfigError) as caught:  # the file named with --rcfile
        load_config(path)
    assert str(caught.value) == message


def test_sections_of_other_tools_are_not_taken_for_misspellings(tmp_path):
    write(tmp_path, "setup.cfg", "[server]\nx = 1\n[coverage:run]\nbranch = 1\n[tool:pytest]\n")
    write(tmp_path, "pyproject.toml", "[tool.coverage.run]\nbranch = true\n[tool.ruff]\n")
    with pytest.raises(ConfigError, match="no rcfile"):
        find_rcfile(start=tmp_path)


def test_a_misspelled_section_does_not_hide_a_real_one_found_later(tmp_path):
    write(tmp_path, ".coveragerc", "[servercove]\n")
    write(tmp_path, "pyproject.toml", PYPROJECT)
    assert find_rcfile(start=tmp_path).name == "pyproject.toml"
