"""Requests/s of a measured server: servercov vs coverage's own way vs no coverage.

    .venv/bin/python bench/throughput.py [--rounds 5] [--seconds 3] [--quick]

The servers scenario's Flask app (tests/scenarios/servers) under
gunicorn -w 2 and uWSGI (master, 2 processes x 2 threads, or ``--uwsgi-threads``),
loaded by wrk (1 thread, 8 connections) on one endpoint.  Setups, alternating round by
round, each a fresh server warmed up for 0.5 s before it is measured:

- ``none``: the server unmeasured;
- ``coverage``: coverage's own way with the same rcfile: ``coverage run -p -m
  gunicorn`` for gunicorn; for uWSGI (a C binary that ``coverage run`` cannot
  wrap) ``COVERAGE_PROCESS_START`` and coverage's ``.pth``;
- ``servercov``: ``servercov serve``, as a user runs it;
- ``servercov+contexts``: the same with ``contexts = test`` and every request
  labelled (``X-Servercov-Context``), to price per-test contexts;
- ``noop``: wrk against a no-op asyncio endpoint, the load generator's ceiling.

``--core`` (ctrace, sysmon, auto) sets coverage's core in the measured setups;
``--branch`` measures branch coverage (the default is line coverage).
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import (
    Server,
    free_url,
    median,
    python_env,
    record,
    scenario_project,
    wait_answering,
    wrk,
)

ENDPOINT = "/items/3/"
BIN = Path(sys.executable).parent
GUNICORN = "-m gunicorn -w 2 -b 127.0.0.1:{port} app:app"
UWSGI = ("--master --http-socket 127.0.0.1:{port} --module app:app --processes 2 "
         "--threads {threads} --disable-logging --master-fifo uwsgi.fifo")
NOOP = """
import asyncio, sys
ANSWER = b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok"
async def serve(reader, writer):
    while await reader.readuntil(b"\\r\\n\\r\\n"):
        writer.write(ANSWER)
async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", int(sys.argv[1]))
    await server.serve_forever()
try:
    asyncio.run(main())
except Exception:
    pass
"""


UWSGI_THREADS = [2]  # --uwsgi-threads


def server_argv(kind: str, port: int) -> list[str]:
    if kind == "gunicorn":
        return [sys.executable, *GUNICORN.format(port=port).split()]
    # uWSGI's http-socket closes each connection without saying so: say it, or wrk
    # counts every reconnect as a read error.
    return [str(BIN / "uwsgi"), *UWSGI.format(port=port, threads=UWSGI_THREADS[0]).split(),
            "--add-header",
            "Connection: close"]


def measure(url: str, seconds: float, headers: tuple[str, ...] = ()) -> float:
    wrk(url, seconds=1, headers=headers)  # warm-up: imports, caches, every worker up
    result = wrk(url, seconds=seconds, headers=headers)
    if result["errors"]:
        raise RuntimeError(f"{result['errors']} failed requests against {url}:\n"
                           f"{result['output']}")
    return result["rps"]


def plain(project: Path, kind: str, seconds: float, *, coverage: bool,
          core_env: dict[str, str]) -> float:
    port, url = free_url(ENDPOINT)
    argv = server_argv(kind, port)
    env = python_env()
    if coverage and kind == "gunicorn":
        argv = [sys.executable, "-m", "coverage", "run", "--rcfile=.apirc", "-p", *argv[1:]]
        env.update(core_env)
    elif coverage:
        env.update(core_env, COVERAGE_PROCESS_START=str(project / ".apirc"))
    stop = signal.SIGINT if kind == "uwsgi" else signal.SIGTERM
    with Server(argv, cwd=project, env=env, ready_url=url, stop_signal=stop):
        return measure(url, seconds)


def servercov(project: Path, kind: str, seconds: float, *, contexts: bool,
              core_env: dict[str, str]) -> float:
    port, url = free_url(ENDPOINT)
    argv = server_argv(kind, port)
    command = shlex.join(argv[1:]) if kind == "gunicorn" else shlex.join(argv)
    command = "{python} " + command if kind == "gunicorn" else command
    rcfile = project / ".apirc"
    text = rcfile.read_text().split("[servercov]")[0]
    rcfile.write_text(text + "[servercov]\n" + f"command = {command}\nport = {port}\n"
                      "ready_path = /health/\nreports = json\n"
                      + ("stop_signal = INT\n" if kind == "uwsgi" else "")
                      + ("contexts = test\n" if contexts else ""))
    argv = [sys.executable, "-m", "nose2_servercov", "serve"]
    headers = ("X-Servercov-Context: bench",) if contexts else ()
    with Server(argv, cwd=project, env=python_env(**core_env), ready_url=url,
                stop_signal=signal.SIGINT):
        state = project / ".servercov" / "serve.json"
        deadline = time.monotonic() + 60
        while not state.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return measure(url, seconds, headers)


def noop(seconds: float) -> float:
    port, url = free_url("/")
    with Server([sys.executable, "-c", NOOP, str(port)], cwd=Path.cwd(), env=python_env(),
                ready_url=url):
        wait_answering(url)
        return measure(url, seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--servers", default="gunicorn,uwsgi")
    parser.add_argument("--core", choices=("default", "ctrace", "sysmon", "auto"),
                        default="default")
    parser.add_argument("--branch", action="store_true")
    parser.add_argument("--setups", default="none,coverage,servercov,servercov+contexts",
                        help="which setups to measure (coverage and servercov at least)")
    parser.add_argument("--uwsgi-threads", type=int, default=2,
                        help="threads per uWSGI process (coverage's own way traces only the "
                             "first before Python 3.12; servercov traces them all)")
    parser.add_argument("--quick", action="store_true", help="one short round: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 1.0
    UWSGI_THREADS[0] = args.uwsgi_threads
    core_env = {} if args.core in ("default", "auto") else {"COVERAGE_CORE": args.core}
    run_section = f"branch = {args.branch}\n"
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="servercov-bench-") as folder:
        project = scenario_project(Path(folder), run=run_section)
        project.joinpath(".apirc").write_text(
            project.joinpath(".apirc").read_text().replace("branch = True\n", ""))
        for kind in args.servers.split(","):
            setups: dict[str, Callable[[], float]] = {
                "none": lambda k=kind: plain(project, k, args.seconds, coverage=False,
                                             core_env=core_env),
                "coverage": lambda k=kind: plain(project, k, args.seconds, coverage=True,
                                                 core_env=core_env),
                "servercov": lambda k=kind: servercov(project, k, args.seconds, contexts=False,
                                                      core_env=core_env),
                "servercov+contexts": lambda k=kind: servercov(
                    project, k, args.seconds, contexts=True, core_env=core_env),
            }
            setups = {name: run for name, run in setups.items()
                      if name in args.setups.split(",")}
            figures: dict[str, list[float]] = {name: [] for name in setups}
            for _ in range(args.rounds):
                for name, run in setups.items():
                    figures[name].append(run())
            results[kind] = {name: median(values) for name, values in figures.items()}
            ratios = [s / c for s, c in zip(figures["servercov"], figures["coverage"], strict=True)]
            results[kind]["servercov/coverage (median of pairs)"] = median(ratios)
        results["noop"] = {"ceiling": median([noop(args.seconds) for _ in range(args.rounds)])}
    label = f"core={args.core}, {'branch' if args.branch else 'line'} coverage"
    if args.uwsgi_threads != 2 and "uwsgi" in args.servers:
        label += f", uWSGI 2x{args.uwsgi_threads}"
    print(f"requests/s, wrk -t1 -c8, {args.rounds} alternating rounds x {args.seconds:g} s, "
          f"medians; {label}; Python {sys.version.split()[0]}")
    for kind, row in results.items():
        print(f"  {kind}: " + json.dumps({k: round(v, 3) for k, v in row.items()}))
    if not args.quick and len(args.setups.split(",")) == 4:  # only whole comparisons are kept
        record(f"throughput[{label}]", {"rounds": args.rounds, "seconds": args.seconds,
                                        "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
