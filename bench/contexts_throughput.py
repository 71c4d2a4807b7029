"""Benchmark: what ``contexts = test`` costs in requests/s when tests run at once.

Run on demand from the repository root (never part of the test suite):

    .venv/bin/python bench/contexts_throughput.py [--rounds 3] [--seconds 3]

With ``contexts = test`` a server process runs one request at a time (coverage's
context is per process, so two requests traced at once would mix their
tests' lines).  This measures the price: the functional tests' Flask app,
served by LocalRun two ways -- Werkzeug's threaded dev server, and
gunicorn with 2 gthread workers of 4 threads -- each with contexts off and
on, under two ``wrk`` clients at once (4 connections each, each client
sending its own context label, as two xdist workers would; and, to tell the
cost of the one-at-a-time from that of coverage's context switch, which
flushes the collected data to the data file, with both clients sending the
same label).  Rounds are interleaved; it prints the median requests/s and
the ratios to contexts off.
"""

from __future__ import annotations

import argparse
import io
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nose2_servercov.engine.config import load_config  # noqa: E402
from nose2_servercov.engine.run import LocalRun  # noqa: E402

SCENARIO = REPO / "tests" / "scenarios" / "basic"
SERVERS = {
    "werkzeug threaded": "{python} serve.py {port}",
    "gunicorn -w 2 gthread x4": "{python} -m gunicorn -w 2 -k gthread --threads 4 "
                                "-b {host}:{port} webapp:create_app()",
}


def rcfile(folder: Path, command: str, contexts: str) -> Path:
    path = folder / ".apirc"
    path.write_text(textwrap.dedent(f"""\
        [run]
        branch = True
        parallel = True
        source = webapp

        [servercov]
        command = {command}
        ready_path = /health/
        shutdown_path = /servercov/shutdown/
        contexts = {contexts}
        reports = json
        """))
    return path


def wrk(url: str, label: str, seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["wrk", "-t", "1", "-c", "4", "-d", f"{seconds:g}s", "-H",
         f"X-Servercov-Context: {label}", url + "/items/1/"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


MODES = {"off": ("off", ("bench::a", "bench::b")),
         "two labels": ("test", ("bench::a", "bench::b")),
         "one label": ("test", ("bench::a", "bench::a"))}


def one_round(folder: Path, command: str, mode: str, seconds: float) -> float:
    """Return the requests/s of two concurrent wrk clients against the measured server."""
    contexts, labels = MODES[mode]
    config = load_config(rcfile(folder, command, contexts))
    session = LocalRun(config, err=io.StringIO(), out=io.StringIO())
    url = session.start()
    try:
        clients = [wrk(url, label, seconds) for label in labels]
        total = 0.0
        for client in clients:
            out, _ = client.communicate(timeout=seconds + 30)
            found = re.search(r"Requests/sec:\s+([\d.]+)", out)
            if not found:
                raise RuntimeError(out)
            total += float(found.group(1))
    finally:
        session.finish()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install -y wrk")
    results: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="servercov-bench-") as scratch:
        folder = Path(scratch) / "app"
        shutil.copytree(SCENARIO, folder)
        for _ in range(args.rounds):
            for name, command in SERVERS.items():
                for mode in MODES:
                    rps = one_round(folder, command, mode, args.seconds)
                    results.setdefault((name, mode), []).append(rps)
    print(f"requests/s, medians of {args.rounds}; contexts = test with two clients sending "
          "two labels (two tests at once) or one label")
    print(f"{'server':26} {'off':>7} {'two labels':>16} {'one label':>16}")
    for name in SERVERS:
        off = statistics.median(results[(name, "off")])
        two = statistics.median(results[(name, "two labels")])
        one = statistics.median(results[(name, "one label")])
        print(f"{name:26} {off:7.0f} {two:9.0f} ({two / off:4.2f}) {one:9.0f} ({one / off:4.2f})")


if __name__ == "__main__":
    main()
