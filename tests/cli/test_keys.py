"""``servercov keys`` and the exit statuses in every --help (issue 24, item 8).

Real runs of the command: the key reference is printed from the one key
table, in plain text, and each --help says what its exit statuses mean and
where the keys are listed.
"""

from __future__ import annotations

import pytest

from nose2_servercov.engine.config import KEYS
from tests.support import run_servercov

KEYS_POINTER = "the rcfile's [servercov] keys, their defaults and meanings: servercov keys"


def test_keys_prints_every_key_with_its_default_and_meaning_in_plain_text(tmp_path):
    run = run_servercov(tmp_path, "keys")  # no rcfile needed: nothing is read
    assert (run.returncode, run.stderr) == (0, "")
    lines = run.stdout.splitlines()
    assert lines[0] == "The [servercov] keys of the rcfile ([coverage:servercov] in setup.cfg or"
    main = run.stdout.split("\n\nThe keys of a [servercov:NAME]")[0].splitlines()  # sections after
    heads = [line for line in main if line and not line.startswith(" ")][3:]
    assert heads == [f"{key.name}  (" + ("required" if key.default is None
                                          else f"default: {key.default or 'none'}") + ")"
                     for key in KEYS]
    assert "ready_path  (default: none)" in lines
    assert "startup_timeout  (default: 30)" in lines
    assert "reports  (default: term, html)" in lines
    assert "    seconds to wait for ready" in lines
    assert "`" not in run.stdout and "|" not in run.stdout  # not the README's Markdown
    assert max(map(len, lines)) <= 79


def test_every_meaning_of_the_key_table_is_printed(tmp_path):
    run = run_servercov(tmp_path, "keys")
    flowing = " ".join(line.strip() for line in run.stdout.splitlines())
    for key in KEYS:
        assert key.meaning.replace("`", "") in flowing


RUN_STATUSES = """exit status: the command's own, or
  1      the server could not start or servercov failed
         (one "servercov: error:" line says why)
  2      the command passed but fail_under ([report]) was not met
  3      the command passed but a measured process lost its data (lost_data = fail)
  127    the command cannot be found
  128+N  servercov was stopped by signal N before the command ran"""
FINAL_REPORT = """exit status:
  0      done
  1      one "servercov: error:" line says why
  2      the final report: fail_under ([report]) was not met
  3      the final report: a measured process lost its data (lost_data = fail)"""


@pytest.mark.parametrize(("command", "statuses"), [
    ("run", RUN_STATUSES),
    ("serve", FINAL_REPORT + "\n  128+N  stopped by signal N before the server was ready"),
    ("snapshot", 'exit status:\n  0      the reports were written\n'
                 '  1      one "servercov: error:" line says why'),
    ("stop", FINAL_REPORT),
    ("collect", FINAL_REPORT),
])
def test_each_commands_help_lists_its_exit_statuses_and_points_to_keys(tmp_path, command,
                                                                       statuses):
    run = run_servercov(tmp_path, command, "--help")
    assert run.returncode == 0, run.stderr
    assert run.stdout.endswith(f"\n\n{statuses}\n\n{KEYS_POINTER}\n"), run.stdout


def test_the_top_level_help_lists_the_statuses_and_the_keys_command(tmp_path):
    run = run_servercov(tmp_path, "--help")
    assert run.returncode == 0, run.stderr
    assert "    keys      Print every key of the rcfile's [servercov] section" in run.stdout
    assert ("exit status: `servercov run` exits with its command's own status, or 1 (one\n"
            '"servercov: error:" line), 2 (fail_under), 3 (lost data), 127 (no such command),'
            in run.stdout)
    assert run.stdout.endswith(f"\n\n{KEYS_POINTER}\n"), run.stdout


def test_keys_takes_no_rcfile(tmp_path):
    run = run_servercov(tmp_path, "keys", "--rcfile", "x")
    assert run.returncode == 2
    assert "unrecognized arguments: --rcfile x" in run.stderr
