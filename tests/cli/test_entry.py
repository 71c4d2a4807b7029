"""The entry of ``servercov``: errors become one line and a status, in the process itself.

The same paths run end to end in test_run.py and tests/acceptance/test_errors.py;
here ``main`` is called in-process, so a traceback would fail the test.
"""

from __future__ import annotations

import argparse
import os

import pytest

from nose2_servercov.cli import main
from nose2_servercov.cli.entry import ERROR, NOT_FOUND, build_parser
from nose2_servercov.cli.run import command_of
from nose2_servercov.engine.serve import remove_state
from nose2_servercov.engine.servestate import ServeState, read_state, state_path


def test_a_command_that_cannot_be_found_is_127_and_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no rcfile here: the command is checked first
    assert main(["run", "--", "no-such-command-xyz"]) == NOT_FOUND
    assert capsys.readouterr().err == ("servercov: error: cannot run 'no-such-command-xyz': "
                                       "no such command (or not executable)\n")


def test_run_without_a_command_is_one_error_line(capsys):
    assert main(["run", "--"]) == ERROR
    assert capsys.readouterr().err == ("servercov: error: no command to run: servercov run "
                                       "[--rcfile FILE] -- COMMAND...\n")


def test_the_command_is_what_follows_the_double_dash():
    args = build_parser().parse_args(["run", "-v", "--", "pytest", "--", "-q"])
    assert command_of(args) == ["pytest", "--", "-q"]
    assert command_of(argparse.Namespace(command=["pytest", "-q"])) == ["pytest", "-q"]


@pytest.mark.parametrize("flag", ["--control-cert=x", "--control-key=x", "--control-insecure",
                                  "--control-token-file=x"])
def test_control_options_need_control(capsys, tmp_path, flag):
    rcfile = tmp_path / ".apirc"
    rcfile.write_text("[servercov]\ncommand = {python} -m http.server {port}\n")
    assert main(["serve", "--rcfile", str(rcfile), flag]) == ERROR
    name = flag.split("=")[0]
    assert capsys.readouterr().err == f"servercov: error: {name} needs --control HOST:PORT\n"


def test_a_serve_removes_only_its_own_state_file(tmp_path):
    rcfile = tmp_path / ".apirc"
    path = state_path(rcfile)
    another = ServeState(os.getppid(), 0, 1, "http://x", str(rcfile), ".coverage")
    another.write(path)
    remove_state(path)
    assert read_state(path) == another  # a newer serve's: left alone
    ServeState.of_this_process(server_pgid=1, url="http://x", rcfile=rcfile,
                               data_file=".coverage").write(path)
    remove_state(path)
    assert not path.parent.exists()
