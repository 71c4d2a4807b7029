"""Benchmark: ``contexts = test`` under sys.monitoring, labelled and unlabelled vs contexts off.

    .venv/bin/python bench/contexts_sysmon.py [--core sysmon] [--branch] [--rounds 41]
    .ci/in-chroot .ci/venvs/py3.14/bin/python bench/contexts_sysmon.py --core auto --branch

servercov re-arms sys.monitoring's events at each context switch, so
``contexts = test`` keeps the sysmon core (3.12+).  The goal: with every
request labelled (one label, as one test sends them), requests/s >= 0.95x
contexts off, same core.

This machine's speed drifts by 10-20 % within a minute (the CPU time of one
request moves with it), more than the effect measured.  So the four setups
run side by side, each its own ``gunicorn -w 2`` of the servers scenario's
app, started once: no coverage, ``servercov serve`` with contexts off, with
contexts on and no label, with contexts on and every request labelled.  Each
round loads each of them with wrk for ``--seconds`` (1 s), in a rotating
order, so the two runs of a ratio are seconds apart; the figure is the median
of the rounds' own ratios, with its quartiles.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import Server, free_url, python_env, record, scenario_project, wrk
from throughput import ENDPOINT, server_argv

SETUPS = ("none", "off", "unlabelled", "labelled")
LABEL = "X-Servercov-Context: bench"


def start(stack: contextlib.ExitStack[bool | None], folder: Path, setup: str, *, branch: bool,
          core_env: dict[str, str]) -> str:
    """Start ``setup``'s server in a project of its own; return the URL to load."""
    project = scenario_project(folder / setup, run=f"branch = {branch}\n")
    rcfile = project / ".apirc"
    rcfile.write_text(rcfile.read_text().replace("branch = True\n", ""))
    port, url = free_url(ENDPOINT)
    argv = server_argv("gunicorn", port)
    if setup == "none":
        stack.enter_context(Server(argv, cwd=project, env=python_env(), ready_url=url))
        return url
    text = rcfile.read_text().split("[servercov]")[0]
    rcfile.write_text(text + "[servercov]\n" + f"command = {{python}} {shlex.join(argv[1:])}\n"
                      f"port = {port}\nready_path = /health/\nreports = json\n"
                      + ("" if setup == "off" else "contexts = test\n"))
    stack.enter_context(Server([sys.executable, "-m", "nose2_servercov", "serve"], cwd=project,
                               env=python_env(**core_env), ready_url=url,
                               stop_signal=signal.SIGINT))
    state = project / ".servercov" / "serve.json"
    deadline = time.monotonic() + 60
    while not state.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return url


def load(urls: dict[str, str], rounds: int, seconds: float) -> dict[str, list[float]]:
    """Load every setup once a round, in a rotating order; return each one's requests/s."""
    headers = {setup: (LABEL,) if setup == "labelled" else () for setup in urls}
    for setup, url in urls.items():  # warm-up: imports, caches, the first label's switch
        wrk(url, seconds=2, headers=headers[setup])
    figures: dict[str, list[float]] = {setup: [] for setup in urls}
    for round_ in range(rounds):
        order = SETUPS[round_ % len(SETUPS):] + SETUPS[:round_ % len(SETUPS)]
        for setup in order[::-1] if round_ % 2 else order:
            result = wrk(urls[setup], seconds=seconds, headers=headers[setup])
            if result["errors"]:
                raise RuntimeError(f"{result['errors']} failed requests ({setup}):\n"
                                   f"{result['output']}")
            figures[setup].append(result["rps"])
    return figures


def ratio(figures: dict[str, list[float]], setup: str, base: str) -> tuple[float, float, float]:
    """Return the median of the rounds' ``setup``/``base`` ratios, and its quartiles."""
    ratios = [a / b for a, b in zip(figures[setup], figures[base], strict=True)]
    if len(ratios) < 4:
        return statistics.median(ratios), min(ratios), max(ratios)
    low, middle, high = statistics.quantiles(ratios, n=4)
    return middle, low, high


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--core", choices=("sysmon", "ctrace", "auto"), default="sysmon")
    parser.add_argument("--branch", action="store_true")
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--quick", action="store_true", help="three short rounds: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 3
    core_env = {} if args.core == "auto" else {"COVERAGE_CORE": args.core}
    with tempfile.TemporaryDirectory(prefix="servercov-bench-") as folder, \
            contextlib.ExitStack() as stack:
        urls = {setup: start(stack, Path(folder), setup, branch=args.branch, core_env=core_env)
                for setup in SETUPS}
        figures = load(urls, args.rounds, args.seconds)
    medians = {setup: statistics.median(values) for setup, values in figures.items()}
    ratios = {"labelled/off": ratio(figures, "labelled", "off"),
              "unlabelled/off": ratio(figures, "unlabelled", "off"),
              "labelled/unlabelled": ratio(figures, "labelled", "unlabelled"),
              "off/none": ratio(figures, "off", "none")}
    python = sys.version.split()[0]
    coverage_kind = "line + branch" if args.branch else "line"
    print(f"requests/s, gunicorn -w 2 each, wrk -t1 -c8, {args.rounds} rounds x "
          f"{args.seconds:g} s, side by side; core={args.core}, {coverage_kind} coverage; "
          f"Python {python}")
    print("  medians: " + ", ".join(f"{setup} {medians[setup]:.0f}" for setup in SETUPS))
    for name, (middle, low, high) in ratios.items():
        print(f"  {name}: {middle:.3f} (quartiles {low:.3f}-{high:.3f})")
    if not args.quick:
        record(f"contexts_sysmon[Python {python}, {args.core}, {coverage_kind}]",
               {"rounds": args.rounds, "seconds": args.seconds, "median_rps": medians,
                "ratios_median_q1_q3": ratios})
    return 0


if __name__ == "__main__":
    sys.exit(main())
