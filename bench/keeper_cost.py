"""Benchmark: what the keeper process and the run lock add to a server's start-up.

Run on demand from the repository root (never part of the test suite):

    .venv/bin/python bench/keeper_cost.py [--rounds 15]

Each round, interleaved so machine noise hits both alike, starts the basic
test scenario's server through ``LocalRun.start()`` (lock, leftover
check, erase, keeper, server, ready) twice: once as shipped, once with the
keeper's start replaced by nothing.  It prints the median time to ready of
each, their difference, the median time of ``Keeper.start()`` alone and the
keeper process's own CPU time (user + system, from start to exit): what it
can take from the server's start-up on a busy machine.
"""

from __future__ import annotations

import argparse
import io
import resource
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nose2_servercov.engine.config import load_config  # noqa: E402
from nose2_servercov.engine.run import LocalRun  # noqa: E402
from nose2_servercov.engine.server import keeper  # noqa: E402

SCENARIO = REPO / "tests" / "scenarios" / "basic"


def start_to_ready(project: Path) -> float:
    session = LocalRun(load_config(project / ".apirc"), err=io.StringIO(),
                            out=io.StringIO())
    started = time.perf_counter()
    session.start()
    ready = time.perf_counter() - started
    session.finish()
    return ready


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="servercov-keeper-bench-"))
    project = folder / "basic"
    shutil.copytree(SCENARIO, project)
    sys.path.insert(0, str(project))
    shipped_start = keeper.Keeper.start
    with_keeper, without = [], []
    try:
        for _ in range(args.rounds):
            keeper.Keeper.start = shipped_start  # type: ignore[method-assign]
            with_keeper.append(start_to_ready(project))
            keeper.Keeper.start = lambda self: None  # type: ignore[method-assign]
            without.append(start_to_ready(project))
    finally:
        keeper.Keeper.start = shipped_start  # type: ignore[method-assign]
        shutil.rmtree(folder, ignore_errors=True)
    alone, cpu = [], []
    for _ in range(args.rounds):
        guard = keeper.Keeper(stop_signal=signal.SIGTERM, grace=2.0)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        guard.start()
        alone.append(time.perf_counter() - started)
        time.sleep(0.2)  # let it start completely, as it does beside a server
        guard.disarm()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    a, b = statistics.median(with_keeper), statistics.median(without)
    print(f"start to ready, median of {args.rounds}: with keeper {a * 1000:.1f} ms, "
          f"without {b * 1000:.1f} ms, difference {(a - b) * 1000:+.1f} ms; "
          f"Keeper.start() alone {statistics.median(alone) * 1000:.2f} ms; the keeper "
          f"process's own CPU time {statistics.median(cpu) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
