"""install() never raises into the server: a hook that fails is named, the others still run."""

from __future__ import annotations

import subprocess
import sys

from nose2_servercov import protocol
from tests.support import REPO, python_env

# A Python whose os.register_at_fork is broken (as on a system without fork):
# the hooks that need it fail, the process is still measured and registered.
# It is broken once the modules are imported (threading itself registers a fork hook
# at its import, as random does, which coverage imports: on 3.12 with coverage 7.10 they
# were not imported yet).
BROKEN_FORK_HOOKS = """
import os, sys, threading, random, coverage
sys.path.insert(0, sys.argv[1])
from nose2_servercov import inserver
def broken(**hooks):
    raise RuntimeError("no fork hooks here")
os.register_at_fork = broken
inserver.install()
import coverage
print("measured" if coverage.Coverage.current() is not None else "not measured")
"""


def test_a_failing_hook_is_named_and_the_server_runs_on(tmp_path):
    (tmp_path / ".coveragerc").write_text(f"[run]\nparallel = true\n"
                                          f"data_file = {tmp_path / '.coverage'}\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = python_env(**{protocol.COVERAGE_START_VARIABLE: str(tmp_path / ".coveragerc"),
                        protocol.RUN_DIR_VARIABLE: str(run_dir)})
    run = subprocess.run([sys.executable, "-c", BROKEN_FORK_HOOKS, str(REPO)], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "measured\n"
    failures = [line for line in run.stderr.splitlines() if "failed, the server runs on" in line]
    assert [line.split(": ")[2].split()[0] for line in failures] == [
        "register_now_and_after_fork", "keep_data_of_a_master_that_never_exits",
        "answer_save_requests"]
    assert all(line.startswith("servercov: pid ") and "no fork hooks here" in line
               for line in failures)
    # It registered before the call that failed, and the next hook marked its orderly exit.
    pid = int(failures[0].split()[2].rstrip(":"))
    assert (run_dir / protocol.registration_file(pid)).exists()
    assert (run_dir / protocol.exit_file(pid)).exists()
