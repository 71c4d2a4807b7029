"""Memory of a measured server process: servercov vs ``coverage run`` vs no coverage.

    .venv/bin/python bench/rss.py [--rounds 5] [--quick]

gunicorn -w 2 serving the servers scenario's app; after a short wrk load that
reaches both workers, the resident set size (VmRSS) of each worker is read
from /proc.  Setups alternate round by round; medians of the workers' RSS.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

from common import Server, free_url, median, python_env, record, scenario_project, wrk
from throughput import ENDPOINT, server_argv


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_bytes()
            except OSError:
                continue
            if int(stat[stat.rfind(b")") + 2:].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def workers_rss(master: int) -> list[int]:
    workers = children(master)
    if len(workers) != 2:
        raise RuntimeError(f"expected 2 gunicorn workers under {master}, found {workers}")
    return [rss_kib(pid) for pid in workers]


def one(project: Path, setup: str) -> list[int]:
    port, url = free_url(ENDPOINT)
    argv = server_argv("gunicorn", port)
    env = python_env()
    if setup == "coverage":
        argv = [sys.executable, "-m", "coverage", "run", "--rcfile=.apirc", "-p", *argv[1:]]
    if setup == "servercov":
        text = (project / ".apirc").read_text().split("[servercov]")[0]
        (project / ".apirc").write_text(
            text + "[servercov]\ncommand = {python} " + " ".join(argv[1:])
            + f"\nport = {port}\nready_path = /health/\nreports = json\n")
        argv = [sys.executable, "-m", "nose2_servercov", "serve"]
    with Server(argv, cwd=project, env=env, ready_url=url, stop_signal=signal.SIGINT) as server:
        wrk(url, seconds=1)
        assert server.process is not None
        master = server.process.pid
        if setup == "servercov":  # serve -> (keeper ->) gunicorn master -> workers
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                masters = [pid for pid in _descendants(master) if len(children(pid)) == 2]
                if masters:
                    return workers_rss(masters[0])
                time.sleep(0.05)
            raise RuntimeError("no gunicorn master found under servercov serve")
        return workers_rss(master)


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        for child in children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    figures: dict[str, list[int]] = {"none": [], "coverage": [], "servercov": []}
    with tempfile.TemporaryDirectory(prefix="servercov-bench-") as folder:
        project = scenario_project(Path(folder))
        for _ in range(rounds):
            for setup in figures:
                figures[setup].extend(one(project, setup))
    medians = {name: median(values) / 1024 for name, values in figures.items()}
    extra = medians["servercov"] - medians["coverage"]
    print(f"gunicorn -w 2 worker RSS, {rounds} alternating rounds, medians (MiB)")
    print("  " + ", ".join(f"{k} {v:.1f}" for k, v in medians.items())
          + f"; servercov - coverage run: {extra:+.2f} MiB (goal <= +2)")
    if not args.quick:
        record("rss", {"rounds": rounds, "median_mib": medians, "servercov_minus_coverage": extra})
    return 0


if __name__ == "__main__":
    sys.exit(main())
