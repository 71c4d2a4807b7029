"""Soak: 100 runs in one folder, a quarter interrupted at a random moment; count what went wrong.

Run on demand from the repository root (never part of the test suite; pytest
collects no file of this folder):

    .venv/bin/python tests/soak/soak.py [--runs 100] [--seed N] [--minutes 20]

The runs alternate between ``servercov run -- python -m unittest`` and
``nose2 --with-servercov`` on the basic scenario, all in the same folder.  A
quarter of them (chosen by the seed) get SIGINT, SIGTERM or SIGKILL (in turn)
on the runner's pid at a random moment of their run; those also request
``/once/b/``, which no other run does.  After every run:

- orphans: a process still carrying the run's marker (``ORPHAN_MARKER`` in
  ``/proc/*/environ``: the runner's, the server's, the test command's and the
  keeper's environment hold it) 3 s after the runner ended;
- stale data: an uninterrupted run whose report is not exactly its own
  requests (the in-process replay of the plan: a line of ``/once/b/`` or any
  other extra or missing line), or that left per-process data files;
- wrong exit status: a SIGKILLed runner whose status is not -9; a
  ``servercov run`` whose status is not its command's real one (the command,
  ``python -m unittest`` run in-process by a few lines that write its exit
  status to a file) or, when the command never ended by itself, not the
  signal's (-N, 128+N; or 1 when the signal cut Python's own start-up short,
  before any servercov code ran); a nose2 run that does not exit 0 when whole, or,
  when interrupted, exits 0 without its report written, or with another
  status than -N, 128+N or 1 (a test errored by the stop).

It prints the three counts (each must be 0) and exits 1 if any is not.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.support import (  # noqa: E402
    ground_truth,
    lines_differ,
    make_project,
    marked,
    measured_lines,
    plan,
    python_env,
    servercov_command,
    stray_data_files,
)

ORPHAN_GRACE = 3.0
RUN_TIMEOUT = 120.0
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)


# `python -m unittest`, run in this very process, writing its exit status where told: so
# the soak knows the command's real status, which `servercov run` must exit with.
UNITTEST_RECORDING_STATUS = """
import sys, unittest
path = sys.argv.pop(1)
def record(code):
    with open(path, "w") as f:
        f.write(str(code))
try:
    unittest.main(module=None, argv=["python -m unittest"])
except SystemExit as exc:
    code = exc.code  # unittest exits with a bool
    record(0 if code is None else int(code) if isinstance(code, int) else 1)
    raise
except KeyboardInterrupt:
    record(130)  # Python then ends itself by SIGINT: a shell sees 130
    raise
"""
STATUS_FILE = "command-status"


def command(kind: str) -> list[str]:
    if kind == "run":
        return servercov_command("run", "--", sys.executable, "-c", UNITTEST_RECORDING_STATUS,
                                 STATUS_FILE)
    return [sys.executable, "-m", "nose2", "--with-servercov"]


def allowed_statuses(kind: str, sig: signal.Signals | None, completed: bool,
                     command_status: int | None, started: bool) -> set[int]:
    """Return the exit statuses that are right for a run of ``kind`` stopped by ``sig``.

    ``command_status`` is what the test command of ``servercov run`` exited
    with, None if it never ended by itself (not started, or killed by a signal);
    ``started`` is whether servercov's own code ran at all (printed a line).
    """
    if sig == signal.SIGKILL:
        return {-9}
    if kind == "run":
        if command_status is not None:
            return {command_status}  # the command's own, whatever the signal did to it
        if sig is None:
            return set()  # a whole run whose command recorded nothing: wrong
        statuses = {-int(sig), 128 + int(sig)}  # stopped before the command, or it by the signal
        if not started:
            statuses.add(1)  # Python's own start-up (site, .pth) was interrupted: its status
        return statuses
    if sig is None:
        return {0}
    statuses = {-int(sig), 128 + int(sig), 1}  # 1: the stop lands in a test, which errors
    if completed:
        statuses.add(0)  # the signal came after the tests: the run finished, ignoring it
    return statuses


def kill_marked(marker: str) -> None:
    for pid in marked(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def one_run(project: Path, kind: str, sig: signal.Signals | None, delay: float,
            ) -> tuple[int, str, float, bool]:
    """Run once; return (exit status, output, seconds until nothing was left, signal sent)."""
    marker = uuid.uuid4().hex
    extra = {"ORPHAN_MARKER": marker}
    if sig is not None:
        extra["SCENARIO"] = "once"
    (project / STATUS_FILE).unlink(missing_ok=True)
    with tempfile.TemporaryFile("w+") as output:
        runner = subprocess.Popen(command(kind), cwd=project, env=python_env(**extra),
                                  stdout=output, stderr=subprocess.STDOUT, text=True)
        sent = False
        if sig is not None:
            try:
                runner.wait(delay)
            except subprocess.TimeoutExpired:
                runner.send_signal(sig)
                sent = True
        try:
            status = runner.wait(RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            runner.kill()
            status = runner.wait()
        ended = time.monotonic()
        while marked(marker) and time.monotonic() - ended < ORPHAN_GRACE:
            time.sleep(0.05)
        left = time.monotonic() - ended
        if marked(marker):
            left = float("inf")
            kill_marked(marker)
        # The keeper may write a last line after the runner ended: read after it is gone.
        output.seek(0)
        text = output.read()
    return status, text, left, sent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--minutes", type=float, default=20.0,
                        help="stop starting runs after this long (the soak is bounded)")
    parser.add_argument("--keep", action="store_true", help="keep the project folder")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    interrupted = set(rng.sample(range(args.runs), args.runs // 4))
    folder = Path(tempfile.mkdtemp(prefix="servercov-soak-"))
    project = make_project(folder)
    truth = ground_truth(project, plan(project))
    print(f"soak: {args.runs} runs, {len(interrupted)} interrupted, seed {args.seed}, "
          f"in {project}", flush=True)
    orphans = stale = wrong_status = 0
    durations: dict[str, list[float]] = {"run": [], "nose2": []}
    deadline = time.monotonic() + args.minutes * 60
    done = 0
    signal_turn = 0
    try:
        for number in range(args.runs):
            if time.monotonic() > deadline:
                print(f"soak: time is up after {done} runs", flush=True)
                break
            kind = ("run", "nose2")[number % 2]
            sig = None
            delay = 0.0
            if number in interrupted:
                sig = SIGNALS[signal_turn % len(SIGNALS)]
                signal_turn += 1
                # Within the run, not after it: the shortest recent run of that kind bounds it.
                recent = durations[kind][-5:]
                delay = rng.uniform(0.0, 0.9 * min(recent) if recent else 1.0)
            started = time.monotonic()
            status, output, left, sent = one_run(project, kind, sig, delay)
            own_requests = sig is not None  # it also asked for /once/b/: not the plan's truth
            if sig is not None and not sent:
                print(f"soak: run {number + 1:3d} ended before its {sig.name}: counted whole",
                      flush=True)
                sig = None
            if sig is None:
                durations[kind].append(time.monotonic() - started)
            done += 1
            problems = []
            if left == float("inf"):
                orphans += 1
                problems.append("orphans")
            completed = "servercov: combined" in output
            try:
                command_status: int | None = int((project / STATUS_FILE).read_text())
            except (OSError, ValueError):
                command_status = None
            started_servercov = "servercov:" in output
            if status not in allowed_statuses(kind, sig, completed, command_status,
                                              started_servercov):
                wrong_status += 1
                problems.append(f"exit status {status}")
            if sig is None and status == 0 and not own_requests:
                measured = measured_lines(project / ".coverage", project / "webapp")
                differ = lines_differ(measured, truth)
                strays = stray_data_files(project)
                if differ or strays:
                    stale += 1
                    problems.append(f"stale data: {differ} {strays}")
            what = f"{sig.name} after {delay:.2f} s" if sig else "whole"
            verdict = "; ".join(problems) or "ok"
            print(f"soak: run {number + 1:3d} {kind:5s} {what:22s} exit {status:4d}  "
                  f"left nothing {left:.2f} s after  {verdict}", flush=True)
            if problems:
                print("    | " + "\n    | ".join(output.splitlines()[-15:]), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"soak: {done} runs: orphans {orphans}, stale data {stale}, "
          f"wrong exit statuses {wrong_status}")
    return 1 if orphans or stale or wrong_status else 0


if __name__ == "__main__":
    sys.exit(main())
