"""The test command of ``servercov run`` and the stop signals, on real child processes.

The functional tests (test_run.py) show the whole run; these pin the races
that a whole run meets only once in dozens: a command reaped by ``Popen``'s
own poll, a signal that arrives while the command runs, a command that
ignores it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from nose2_servercov.engine.command import (
    CommandNotFound,
    check_runnable,
    exit_status,
    run_command,
    wait_for_command,
)
from nose2_servercov.engine.stopsignals import (
    StopRequested,
    StopSignals,
    on_stop_signals,
    wakeup_pipe,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def stop_handlers():
    """Give SIGINT and SIGTERM back as they were, whatever the test left."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def run(command, stops=None, grace=5.0):
    said, guarded = [], []
    code = run_command(command, env={"SERVERCOV_URL": "http://127.0.0.1:1"},
                       guard=guarded.append, stops=stops or StopSignals(), grace=grace,
                       say=said.append)
    return code, guarded, said


def test_the_command_gets_the_environment_and_its_status_is_returned():
    code, guarded, said = run([sys.executable, "-c",
                               "import os; raise SystemExit(len(os.environ['SERVERCOV_URL']))"])
    assert code == len("http://127.0.0.1:1")
    assert len(guarded) == 1 and said == []


def test_a_death_by_signal_is_128_plus_n_as_a_shell_says():
    code, _, _ = run(["sh", "-c", "kill -TERM $$"])
    assert code == 128 + signal.SIGTERM
    assert exit_status(-signal.SIGKILL) == 128 + signal.SIGKILL


def test_a_command_reaped_by_popens_own_poll_keeps_its_status():
    # Popen.send_signal polls before it signals; a command that had just ended is
    # reaped there, and waitpid then fails with ECHILD (commit 01c68c4).
    child = subprocess.Popen([sys.executable, "-c", "raise SystemExit(5)"])
    child.wait(30)
    with wakeup_pipe() as wakeup:
        assert wait_for_command(child, StopSignals(), wakeup, 5.0, say=print) == 5


def test_a_stop_signal_is_passed_on_and_a_command_that_ignores_it_is_killed(stop_handlers):
    ignores = ("import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
               "print('ready', flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", ignores], stdout=subprocess.PIPE)
    assert child.stdout is not None and child.stdout.readline() == b"ready\n"
    stops = StopSignals()
    stops.raising = False  # as while run's command runs
    said: list[str] = []
    with on_stop_signals(stops), wakeup_pipe() as wakeup:
        os.kill(os.getpid(), signal.SIGTERM)
        code = wait_for_command(child, stops, wakeup, 0.5, say=said.append)
    child.stdout.close()
    assert stops.received == [signal.SIGTERM]
    assert code == -signal.SIGKILL
    assert said == ["the command was still running 0.5 s after the signal: killed"]


def test_a_command_that_is_not_a_program_is_refused_before_anything_starts(tmp_path):
    with pytest.raises(CommandNotFound, match=r"cannot run 'no-such-command-xyz': no such "
                                              r"command \(or not executable\)"):
        check_runnable(["no-such-command-xyz"])
    with pytest.raises(CommandNotFound, match=r"cannot run '.*': Permission denied"):
        run([str(tmp_path)])


def test_the_first_stop_signal_raises_once_and_every_one_is_recorded():
    stops = StopSignals()
    with pytest.raises(StopRequested) as raised:
        stops(signal.SIGINT, None)
    assert raised.value.signum == signal.SIGINT
    stops(signal.SIGTERM, None)  # unwinding already: recorded only
    assert stops.received == [signal.SIGINT, signal.SIGTERM]


def test_after_a_stop_signal_the_stop_signals_stay_ignored(stop_handlers):
    before = signal.getsignal(signal.SIGTERM)
    with on_stop_signals(StopSignals()):
        pass
    assert signal.getsignal(signal.SIGTERM) == before
    stops = StopSignals()
    stops.raising = False
    with on_stop_signals(stops):
        os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
