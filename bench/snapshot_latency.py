"""Snapshot latency of ``servercov serve`` with gunicorn -w 8 under load (run on demand).

    .venv/bin/python bench/snapshot_latency.py [--snapshots 10] [--threads 8] [--workers 8]

Copies the functional tests' scenario app into a temp folder, serves it
with gunicorn (``--workers``, 8 by default) under ``servercov serve``, keeps
a concurrent load running, and takes snapshots one after another (0.5 s
apart).  Prints the median, min and max of the whole ``servercov snapshot``
command and of the part spent waiting for the server processes' dumps, plus
the failed requests and the request rate and latency without and with
snapshots.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import record

from tests.support import (  # after the path is set
    GUNICORN_4,
    LOAD_KINDS,
    Load,
    make_project,
    run_servercov,
    serve_state,
    start_serve,
)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def load_phase(url: str, seconds: float, threads: int) -> Load:
    load = Load(url, LOAD_KINDS, threads=threads, seconds=seconds, unlock_every=0.0001)
    return load.start()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshots", type=int, default=10)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="two snapshots: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.snapshots = 2
    with tempfile.TemporaryDirectory(prefix="servercov-bench-") as folder:
        project = make_project(Path(folder), servercov=GUNICORN_4.replace(
            "-w 4", f"-w {args.workers}"))
        serve = start_serve(project)
        try:
            url = serve_state(project, serve)["url"]
            load_phase(url, 1.0, args.threads).wait()  # warm up the workers
            baseline = load_phase(url, 3.0, args.threads)
            baseline.wait()
            walls, answers = [], []
            during = load_phase(url, 3600, args.threads)
            for _ in range(args.snapshots):
                time.sleep(0.5)
                started = time.monotonic()
                taken = run_servercov(project, "snapshot", timeout=120)
                walls.append(time.monotonic() - started)
                if taken.returncode != 0:
                    print(taken.stderr, file=sys.stderr)
                    return 1
                answers.append(float(re.search(r"\(([\d.]+) s to answer\)", taken.stderr)[1]))
            during.stop()
            stopped = run_servercov(project, "stop", timeout=120)
            if stopped.returncode != 0:
                print(stopped.stderr, file=sys.stderr)
        finally:
            if serve.poll() is None:
                os.killpg(serve.pid, signal.SIGKILL)
            serve.wait(30)
    during_seconds = time.monotonic() - during.started

    def rate(load: Load, seconds: float) -> str:
        return f"{len(load.latencies) / seconds:.0f}"

    print(f"gunicorn -w {args.workers}, {args.threads} client threads, {args.snapshots} snapshots "
          f"0.5 s apart (Python {sys.version.split()[0]})")
    print()
    print("| measure | median | min | max |")
    print("|---|---|---|---|")
    for name, values in (("`servercov snapshot`, whole command (s)", walls),
                         ("waiting for every process's dump (s)", answers)):
        print(f"| {name} | {statistics.median(values):.3f} | {min(values):.3f} "
              f"| {max(values):.3f} |")
    print()
    print("| load | requests | failed | req/s | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|---|")
    for name, load, seconds in (("without snapshots", baseline, 3.0),
                                ("during snapshots", during, during_seconds)):
        lat = [1000 * x for x in load.latencies]
        print(f"| {name} | {len(lat)} | {len(load.failures)} | {rate(load, seconds)} "
              f"| {percentile(lat, 0.5):.1f} | {percentile(lat, 0.99):.1f} | {max(lat):.1f} |")
    p99 = {name: percentile([1000 * x for x in load.latencies], 0.99)
           for name, load in (("without", baseline), ("during", during))}
    failed = len(baseline.failures) + len(during.failures)
    print(f"\nsnapshot median {statistics.median(walls):.3f} s (goal <= 0.3), failed requests "
          f"{failed} (goal 0), p99 during/without {p99['during'] / p99['without']:.2f} "
          "(goal <= 1.5)")
    if not args.quick:
        record("snapshot", {"workers": args.workers, "snapshots": args.snapshots,
                            "median_s": statistics.median(walls),
                            "answer_median_s": statistics.median(answers), "failed": failed,
                            "p99_ms": p99})
    return 0


if __name__ == "__main__":
    sys.exit(main())
