"""What proves a pid is a ``servercov serve`` for an rcfile, and what the keeper parses."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nose2_servercov.engine.server import keeper
from nose2_servercov.engine.servestate import _rcfile_argument, _serve_arguments, serves_rcfile


@pytest.mark.parametrize(("argv", "expected"), [
    (["/venv/bin/python", "/venv/bin/servercov", "serve"], []),
    (["/venv/bin/servercov", "serve", "-v", "--rcfile", "ci/.apirc"], ["-v", "--rcfile",
                                                                       "ci/.apirc"]),
    (["python3", "-m", "nose2_servercov", "serve", "--rcfile=x"], ["--rcfile=x"]),
    (["python3", "/src/nose2_servercov/__main__.py", "serve"], []),
    (["python", "-m", "coverage", "run", "-m", "nose2_servercov", "serve"], []),
    (["/venv/bin/servercov", "run", "--", "servercov", "serve"], None),
    (["/venv/bin/servercov", "stop"], None),
    (["sleep", "60"], None),
    (["python", "serve", "nose2_servercov", "serve"], None),
    (["python", "-c", "nose2_servercov", "serve"], None),
    ([], None),
])
def test_only_a_servercov_serve_command_line_counts(argv, expected):
    assert _serve_arguments(argv) == expected


@pytest.mark.parametrize(("arguments", "expected"), [
    ([], None),
    (["-v"], None),
    (["--rcfile", "a/.apirc"], "a/.apirc"),
    (["-v", "--rcfile=b.ini"], "b.ini"),
    (["--rcf", "c"], "c"),  # argparse takes unambiguous prefixes
    (["--rcfile"], None),
    (["--r", "d"], None),
])
def test_the_rcfile_argument_is_read_as_argparse_reads_it(arguments, expected):
    assert _rcfile_argument(arguments) == expected


def test_a_live_process_that_is_no_serve_is_not_proven(tmp_path):
    rcfile = tmp_path / ".apirc"
    rcfile.write_text("[servercov]\ncommand = x\n")
    other = subprocess.Popen(["sleep", "30"], cwd=tmp_path)
    try:
        assert not serves_rcfile(other.pid, rcfile)
        assert not serves_rcfile(os.getpid(), rcfile)
    finally:
        other.kill()
        other.wait()


def test_a_process_whose_command_line_is_a_serve_of_that_rcfile_is_proven(tmp_path):
    rcfile = tmp_path / "ci" / ".apirc"
    rcfile.parent.mkdir()
    rcfile.write_text("[servercov]\ncommand = x\n")
    # Not a real serve: a Python whose command line reads like one.
    fake = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)",
                             "nose2_servercov"], cwd=tmp_path)
    serve = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "-m",
                              "nose2_servercov", "serve", "--rcfile", "ci/.apirc"], cwd=tmp_path)
    try:
        # Popen returns once the child is in execve, a moment before its new command line
        # shows in /proc (vfork): wait for it, as a serve found later always has it.
        for process in (fake, serve):
            wait_for_command_line(process.pid)
        assert not serves_rcfile(fake.pid, rcfile)
        assert serves_rcfile(serve.pid, rcfile)
        assert not serves_rcfile(serve.pid, tmp_path / ".apirc")
    finally:
        for process in (fake, serve):
            process.kill()
            process.wait()


def wait_for_command_line(pid: int) -> None:
    deadline = time.monotonic() + 10
    while not Path(f"/proc/{pid}/cmdline").read_bytes():
        assert time.monotonic() < deadline, f"pid {pid} never showed its command line"
        time.sleep(0.01)


@pytest.mark.parametrize(("line", "expected"), [
    (b"group 12 345", ("group", 12, 345)),
    (b"pid 7 8", ("pid", 7, 8)),
    (b"group -1 3", None),
    (b"kill 1 2", None),
    (b"group 1", None),
    (b"", None),
])
def test_the_keeper_obeys_only_well_formed_lines(line, expected):
    assert keeper._parse(line) == expected
