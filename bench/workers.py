"""What measuring a Celery worker costs: tasks/s with the worker measured vs not, same run.

    .venv/bin/python bench/workers.py [--rounds 5] [--tasks 400] [--quick]

The shop example (examples/workers) with its Redis and its Celery worker
(prefork, 2 children) started by servercov as sections; in one setup the
Celery section is measured (the default), in the other ``measured = false``
(the worker as it runs without servercov); a third setup is that section
with coverage.py alone (``COVERAGE_PROCESS_START`` and coverage's .pth, patch =
fork, _exit: what coverage's own process support costs, without servercov's
hooks).  Everything else is the same:
the API is measured in both and idle.  This process sends ``--tasks`` tasks
to the broker at once and waits for every result; tasks/s is their number
over that time.  Setups alternate round by round (a fresh run each); medians.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, alternate, median, record

from nose2_servercov.engine.config import load_config
from nose2_servercov.engine.run import LocalRun

EXAMPLE = REPO / "examples" / "workers"


SETUPS = ("unmeasured", "coverage alone", "measured")


def project(folder: Path, setup: str) -> Path:
    """Copy the example into ``folder``; its Celery section as ``setup``, no RQ section."""
    target = folder / setup.replace(" ", "-")
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns(
        "__pycache__", ".coverage*", "cover", ".servercov"))
    rcfile = target / ".apirc"
    text = re.sub(r"\[servercov:rq\]\n(.+\n)+\n", "", rcfile.read_text())
    if setup != "measured":
        text = text.replace("[servercov:celery]\n", "[servercov:celery]\nmeasured = false\n")
    if setup == "coverage alone":
        alone = target / "alone.coveragerc"
        alone.write_text("[run]\ndata_file = alone.coverage\nsource = shop\nparallel = True\n"
                         "patch = fork, _exit\n")
        text = text.replace("    SHOP_REDIS_URL = redis://127.0.0.1:{redis_port}/0\nready_output",
                            "    SHOP_REDIS_URL = redis://127.0.0.1:{redis_port}/0\n"
                            f"    COVERAGE_PROCESS_START = {alone}\nready_output")
    rcfile.write_text(text.replace("reports = term-missing, html", "reports = json"))
    return target


def tasks_per_second(folder: Path, tasks: int) -> float:
    """Start the run, send ``tasks`` tasks, wait for every result; return tasks/s."""
    run = LocalRun(load_config(folder / ".apirc"), err=io.StringIO(), out=io.StringIO())
    try:
        run.start()
        os.environ["SHOP_REDIS_URL"] = \
            f"redis://127.0.0.1:{run.test_env()['SERVERCOV_PORT_REDIS']}/0"
        sys.modules.pop("shop.tasks", None)
        sys.modules.pop("shop", None)
        sys.path.insert(0, str(folder))
        try:
            from shop import tasks as shop_tasks
        finally:
            sys.path.remove(str(folder))
        shop_tasks.price.delay(1).get(timeout=60)  # the pool is warm
        started = time.perf_counter()
        results = [shop_tasks.price.delay(n) for n in range(tasks)]
        for result in results:
            result.get(timeout=120)
        elapsed = time.perf_counter() - started
        shop_tasks.app.close()
    finally:
        run.stop(quiet=True)
        run.finish()
    return tasks / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds, tasks = (1, 40) if args.quick else (args.rounds, args.tasks)
    with tempfile.TemporaryDirectory() as tmp:
        folders = {name: project(Path(tmp), name) for name in SETUPS}
        figures = alternate(rounds, {name: (lambda f=folder: tasks_per_second(f, tasks))
                                     for name, folder in folders.items()})
    medians = {name: round(median(values), 1) for name, values in figures.items()}
    # The machine's noise moves a whole round: the median of each round's ratio holds.
    ratio, alone = (median([a / b for a, b in zip(figures[name], figures["unmeasured"],
                                                   strict=True)])
                    for name in ("measured", "coverage alone"))
    print(f"celery prefork -c 2, {tasks} tasks x {rounds} rounds: tasks/s unmeasured "
          f"{medians['unmeasured']}, coverage alone {medians['coverage alone']} ({alone:.0%}), "
          f"servercov {medians['measured']} ({ratio:.0%}; ratios: medians of each round's)")
    if not args.quick:
        record("workers", {"rounds": rounds, "tasks": tasks, "median_tasks_per_s": medians,
                           "measured_over_unmeasured": round(ratio, 3),
                           "coverage_alone_over_unmeasured": round(alone, 3),
                           "all": {k: [round(v, 1) for v in vs] for k, vs in figures.items()}})


if __name__ == "__main__":
    main()
