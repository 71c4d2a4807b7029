"""Run every benchmark in bench/, one after another; ``--quick`` for a smoke run.

    .venv/bin/python bench/run_all.py [--quick]

Full runs keep their figures in bench/results.json (BENCHMARKS.md quotes
them) and redraw bench/throughput.png; ``--quick`` runs each script once,
briefly, to prove it still works (CI runs it), and records nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# wrk last: it leaves tens of thousands of sockets in TIME_WAIT for a minute,
# which slows every connect of the start-up benchmarks after it.
SCRIPTS = (
    ("suite_wall.py",),
    ("startup_stop.py",),
    ("snapshot_latency.py",),
    ("report_time.py",),
    ("rss.py",),
    ("workers.py",),
    ("throughput.py",),
    ("throughput.py", "--branch", "--servers", "gunicorn"),
    ("throughput.py", "--servers", "uwsgi", "--uwsgi-threads", "1"),
    ("contexts_inprocess.py",),
    ("contexts_inprocess.py", "--trivial"),
    ("contexts_sysmon.py",),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    failed = []
    for script, *extra in SCRIPTS:
        argv = [sys.executable, str(HERE / script), *extra, *(["--quick"] if args.quick else [])]
        print(f"== {' '.join([script, *extra])}", flush=True)
        started = time.monotonic()
        if subprocess.run(argv, cwd=HERE.parent).returncode != 0:
            failed.append(script)
        print(f"   ({time.monotonic() - started:.0f} s)", flush=True)
    if not args.quick and not failed:
        subprocess.run([sys.executable, str(HERE / "plot.py")], check=True)
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
