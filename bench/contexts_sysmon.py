"""Benchmark: ``contexts = test`` under sys.monitoring, labelled and unlabelled vs contexts off.

    .venv/bin/python bench/contexts_sysmon.py [--core sysmon] [--branch] [--instances 8]
    .ci/in-chroot .ci/venvs/py3.14/bin/python bench/contexts_sysmon.py --core auto --branch

servercov re-arms sys.monitoring's events at each context switch, so
``contexts = test`` keeps the sysmon core (3.12+).  The goal: with every
request labelled (one label, as one test sends them), requests/s >= 0.95x
contexts off, same core.

Three things stand between a plain wrk run and servercov's cost, and the
method answers each:

- This machine's speed drifts by 10-20 % within a minute.  So the two setups
  of a ratio are loaded *together*, one wrk each, sharing the two cores at
  the same moment: a round's ratio is that of what a request costs, whatever
  the machine's speed then.  It is given both as requests/s and as requests
  per CPU-second of the setup's whole process tree (serve, gunicorn's
  arbiter and workers, from /proc), which does not depend on how the
  scheduler shared the cores.
- The label travels in a header, which gunicorn and werkzeug parse whether
  servercov reads it or not.  ``off-header`` (contexts off, every request
  carrying the header, unread) tells that share apart from servercov's own.
- Two servers of the *same* setup, started side by side, differ by a few
  percent for as long as they run (memory layout, hash seed).  So the setups
  are started afresh ``--instances`` times, each time with one
  ``PYTHONHASHSEED`` for all of them, and a figure is the median over every
  instance's rounds.  A second contexts-off server (``off-again``) measures
  what is left: its ratio to ``off`` is the bench's own resolution.

Each setup is its own ``gunicorn -w 2`` of the servers scenario's app: no
coverage; ``servercov serve`` with contexts off (twice, and once sent the
label's header); contexts on with no label; contexts on with every request
labelled.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import os
import shlex
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import Server, cpu_ns, free_url, python_env, record, scenario_project, wrk
from throughput import ENDPOINT, server_argv

SETUPS = ("none", "off", "off-again", "off-header", "unlabelled", "labelled")
COMPARED = (("labelled", "off"), ("unlabelled", "off"), ("labelled", "unlabelled"),
            ("off-header", "off"), ("labelled", "off-header"), ("off", "none"),
            ("off-again", "off"))
LABELLED = ("labelled", "off-header")  # the requests that carry the label's header
LABEL = "X-Servercov-Context: bench"
Ratios = dict[str, dict[str, list[float]]]  # "top/bottom" -> {"rps": [...], "capacity": [...]}


def start(stack: contextlib.ExitStack[bool | None], folder: Path, setup: str, *, branch: bool,
          env: dict[str, str]) -> tuple[str, int]:
    """Start ``setup``'s server in a project of its own; return the URL to load and its pid."""
    project = scenario_project(folder / setup, run=f"branch = {branch}\n")
    rcfile = project / ".apirc"
    rcfile.write_text(rcfile.read_text().replace("branch = True\n", ""))
    port, url = free_url(ENDPOINT)
    argv = server_argv("gunicorn", port)
    if setup == "none":
        server = stack.enter_context(Server(argv, cwd=project, env=env, ready_url=url))
    else:
        text = rcfile.read_text().split("[servercov]")[0]
        rcfile.write_text(text + "[servercov]\n" + f"command = {{python}} {shlex.join(argv[1:])}\n"
                          f"port = {port}\nready_path = /health/\nreports = json\n"
                          + ("contexts = test\n" if setup in ("unlabelled", "labelled") else ""))
        server = stack.enter_context(Server(
            [sys.executable, "-m", "nose2_servercov", "serve"], cwd=project, env=env,
            ready_url=url, stop_signal=signal.SIGINT))
        state = project / ".servercov" / "serve.json"
        deadline = time.monotonic() + 60
        while not state.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    assert server.process is not None
    return url, server.process.pid


def load_pair(servers: dict[str, tuple[str, int]], top: str, bottom: str,
              seconds: float) -> tuple[float, float]:
    """Load ``top`` and ``bottom`` together; return top/bottom in requests/s and per CPU-second."""
    pair = (top, bottom)
    before = [cpu_ns(servers[setup][1]) for setup in pair]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        loads = [pool.submit(wrk, servers[setup][0], seconds=seconds,
                             headers=(LABEL,) if setup in LABELLED else ()) for setup in pair]
        results = [running.result() for running in loads]
    costs = []
    for setup, result, used in zip(pair, results, before, strict=True):
        if result["errors"] or not result["requests"]:
            raise RuntimeError(f"{result['errors']} failed requests ({setup}):\n"
                               f"{result['output']}")
        costs.append((cpu_ns(servers[setup][1]) - used) / result["requests"])
    return results[0]["rps"] / results[1]["rps"], costs[1] / costs[0]


def measure_instance(ratios: Ratios, rounds: int, seconds: float, *, branch: bool,
                     env: dict[str, str]) -> None:
    """Start every setup afresh, load each compared pair ``rounds`` times, add the ratios."""
    with tempfile.TemporaryDirectory(prefix="servercov-bench-") as folder, \
            contextlib.ExitStack() as stack:
        servers = {setup: start(stack, Path(folder), setup, branch=branch, env=env)
                   for setup in SETUPS}
        for top, bottom in COMPARED:  # warm-up: imports, caches, the first label's switch
            load_pair(servers, top, bottom, 1)
        for _ in range(rounds):
            for top, bottom in COMPARED:
                rate, capacity = load_pair(servers, top, bottom, seconds)
                ratios[f"{top}/{bottom}"]["rps"].append(rate)
                ratios[f"{top}/{bottom}"]["capacity"].append(capacity)


def summary(values: list[float]) -> tuple[float, float, float]:
    """Return the median of ``values`` and its quartiles."""
    if len(values) < 4:
        return statistics.median(values), min(values), max(values)
    low, middle, high = statistics.quantiles(values, n=4)
    return middle, low, high


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--core", choices=("sysmon", "ctrace", "auto"), default="sysmon")
    parser.add_argument("--branch", action="store_true")
    parser.add_argument("--instances", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=4, help="rounds of each instance")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--quick", action="store_true", help="one instance, one round: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.instances, args.rounds = 1, 1
    core_env = {} if args.core == "auto" else {"COVERAGE_CORE": args.core}
    ratios: Ratios = {f"{top}/{bottom}": {"rps": [], "capacity": []} for top, bottom in COMPARED}
    for instance in range(args.instances):
        seed = os.environ.get("PYTHONHASHSEED", str(instance))
        measure_instance(ratios, args.rounds, args.seconds, branch=args.branch,
                         env=python_env(**core_env, PYTHONHASHSEED=seed))
    python = sys.version.split()[0]
    coverage_kind = "line + branch" if args.branch else "line"
    print(f"gunicorn -w 2 each, wrk -t1 -c8; {args.instances} instances x {args.rounds} rounds "
          f"x {args.seconds:g} s, each pair loaded together; core={args.core}, "
          f"{coverage_kind} coverage; Python {python}")
    summaries = {}
    for pair, kinds in ratios.items():
        rate, capacity = summary(kinds["rps"]), summary(kinds["capacity"])
        summaries[pair] = {"requests_per_s": rate, "requests_per_cpu_second": capacity}
        print(f"  {pair}: requests/s {rate[0]:.3f} (quartiles {rate[1]:.3f}-{rate[2]:.3f}); "
              f"requests per CPU-second {capacity[0]:.3f} ({capacity[1]:.3f}-{capacity[2]:.3f})")
    if not args.quick:
        record(f"contexts_sysmon[Python {python}, {args.core}, {coverage_kind}]",
               {"instances": args.instances, "rounds": args.rounds, "seconds": args.seconds,
                "loaded": "each pair together", "ratios_median_q1_q3": summaries})
    return 0


if __name__ == "__main__":
    sys.exit(main())
