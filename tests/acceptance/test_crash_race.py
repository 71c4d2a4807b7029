"""A server that crashes just before the stop is a crash, never a stop: 50 times in a row.

The race (tests/frontends/test_nose2_plugin.py's crash test failed 2-8 times in 20):
a crashing process closes its sockets before its parent can reap it, so the
test sees the connection drop while the server is not yet a zombie; the stop
then met a half-dead server whose dropped connection counted as a delivered
shutdown, and reported "stopped by shutdown_path", exit 0.  This drives the
engine directly (LocalRun over a tiny real server started with
``python -S``, so unmeasured and fast), crashes it, and stops it at once.
"""

from __future__ import annotations

import http.client
import shutil
from pathlib import Path

import pytest

from nose2_servercov.engine.config import load_config
from nose2_servercov.engine.data import accounting
from nose2_servercov.engine.run import LocalRun
from tests.support import SCENARIOS, assert_no_leftovers

pytestmark = pytest.mark.timeout(180)
ROUNDS = 50


def crash_project(tmp_path: Path) -> Path:
    """Copy the crash scenario into ``tmp_path`` (the run writes its lock and data beside it)."""
    shutil.copytree(SCENARIOS / "crash", tmp_path / "crash")
    return tmp_path / "crash" / ".apirc"


def crash_and_stop(rcfile: Path, overrides: dict[str, str]) -> tuple[str, int | None, bool]:
    """Start the server, crash it, stop it at once; return (step, exit code, exited early)."""
    import io

    session = LocalRun(load_config(rcfile, overrides), err=io.StringIO())
    session.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", session.port, timeout=5)
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            conn.request("GET", "/crash/")
            conn.getresponse()
        conn.close()
        outcome = session.stop()
    finally:
        session.stop()
        assert session.run_dir is not None
        accounting.remove_run_dir(session.run_dir)
    assert outcome is not None
    return outcome.step, outcome.exit_code, outcome.exited_early


def test_a_crash_in_the_last_milliseconds_is_always_reported_50_times_in_a_row(tmp_path):
    """Rounds alternate: stop through the shutdown path, and by signal alone."""
    rcfile = crash_project(tmp_path)
    by_path = {"cwd": str(rcfile.parent)}
    by_signal = {**by_path, "shutdown_path": ""}
    outcomes = []
    for number in range(ROUNDS):
        outcomes.append(crash_and_stop(rcfile, by_signal if number % 2 else by_path))
    wrong = [(n, o) for n, o in enumerate(outcomes) if o != ("already exited", 7, True)]
    assert wrong == [], f"{len(wrong)} of {ROUNDS} crashes taken for a stop: {wrong[:5]}"
    assert_no_leftovers(rcfile.parent)


def test_a_server_that_answers_the_shutdown_call_is_stopped_not_crashed(tmp_path):
    """The other side of the same line: a delivered shutdown is a stop, exit code 0."""
    import io

    rcfile = crash_project(tmp_path)
    for _ in range(5):
        session = LocalRun(load_config(rcfile, {"cwd": str(rcfile.parent)}),
                           err=io.StringIO())
        session.start()
        try:
            outcome = session.stop()
        finally:
            assert session.run_dir is not None
            accounting.remove_run_dir(session.run_dir)
        assert outcome is not None
        assert (outcome.step, outcome.exit_code, outcome.exited_early) == (
            "shutdown_path", 0, False)
