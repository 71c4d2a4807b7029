"""Benchmark: what measuring a server costs at start-up and stop, side by side.

Run on demand from the repository root (never part of the test suite):

    .venv/bin/python bench/startup_stop.py [--rounds 10]

Each round, interleaved so machine noise hits all alike, starts the sample
API four ways, each polled until /0.0/health/ answers:
(a) plain: unmeasured, stopped by SIGTERM (its data would be lost: no data);
(b) the hand recipe: ``coverage run -p -m sample_api.server``, stopped by
    SIGINT (the recipe's shutdown route needs werkzeug.server.shutdown, gone
    since Werkzeug 2.1), then ``coverage combine`` and ``coverage html``;
(c) servercov's LocalRun: measured, stopped by the token-gated shutdown
    route, data combined and html written in-process;
(d) the same without ``shutdown_path``: stopped by signal, after the save
    request every measured process answers first (its dump on disk).
It prints medians per phase, the ratio servercov / hand recipe, and the
median stop by signal of (d) against its goal (<= 0.2 s).
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common import record  # noqa: E402

from nose2_servercov.engine.config import load_config  # noqa: E402
from nose2_servercov.engine.run import LocalRun  # noqa: E402
from nose2_servercov.engine.server.network import http_status, pick_free_port  # noqa: E402

# The setups of a round, in the order they run: see the module doc.
SETUPS = ("plain", "hand", "servercov", "servercov-signal")


def _wait_ready(port: int) -> None:
    while True:
        try:
            if http_status("GET", f"http://127.0.0.1:{port}/0.0/health/", timeout=1) < 500:
                return
        except OSError:
            time.sleep(0.01)  # the baselines poll, as the hand recipes do


def baseline_round(folder: Path, *, measured: bool) -> dict[str, float]:
    """Start the sample plain or under ``coverage run``; stop it; combine and report."""
    port = pick_free_port("127.0.0.1")
    coverage_run = [sys.executable, "-m", "coverage", "run", f"--rcfile={folder / '.apirc'}",
                    "-p"] if measured else [sys.executable]
    env = {**os.environ, "COVERAGE_FILE": str(folder / ".coverage")}
    started = time.perf_counter()
    server = subprocess.Popen(
        [*coverage_run, "-m", "sample_api.server", "--port", str(port)], cwd=REPO, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    _wait_ready(port)
    ready = time.perf_counter()
    os.killpg(server.pid, signal.SIGINT if measured else signal.SIGTERM)
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:  # never leave it running, even when the bench fails
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)
        raise
    stopped = time.perf_counter()
    if measured:
        for step in (["combine", "-q"], ["html", "-q", "-d", str(folder / "hand-html")]):
            subprocess.run([sys.executable, "-m", "coverage", *step,
                            f"--rcfile={folder / '.apirc'}"], cwd=REPO, env=env, check=True,
                           stdout=subprocess.DEVNULL)
    return {"ready": ready - started, "stop": stopped - ready,
            "report": time.perf_counter() - stopped}


def measured_round(folder: Path, *, by_signal: bool = False) -> dict[str, float]:
    """Start the sample through LocalRun, stop it by its route (or by signal), report."""
    config = load_config(folder / ".apirc", {"shutdown_path": ""} if by_signal else None)
    session = LocalRun(config, err=io.StringIO(), out=io.StringIO())  # reports: term, html
    started = time.perf_counter()
    session.start()
    ready = time.perf_counter()
    session.stop()
    stopped = time.perf_counter()
    session.finish()
    return {"ready": ready - started, "stop": stopped - ready,
            "report": time.perf_counter() - stopped}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="one round: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rcfile = (REPO / ".apirc").read_text().replace(
            "source = sample_api/", f"source = {REPO / 'sample_api'}")
        (folder / ".apirc").write_text(rcfile + f"cwd = {REPO}\n")
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name in SETUPS}
        for _ in range(args.rounds):
            rounds["plain"].append(baseline_round(folder, measured=False))
            rounds["hand"].append(baseline_round(folder, measured=True))
            rounds["servercov"].append(measured_round(folder))
            rounds["servercov-signal"].append(measured_round(folder, by_signal=True))
    print(f"sample API, Werkzeug dev server, {args.rounds} interleaved rounds, medians in s")
    print(f"{'phase':<20}{'plain':>8}{'hand recipe':>13}{'servercov':>11}{'ratio':>7}"
          f"{'by signal':>11}")
    medians: dict[str, dict[str, float]] = {}
    for phase, label in (("ready", "start to ready"), ("stop", "stop"),
                         ("report", "combine + html")):
        medians[phase] = {name: statistics.median(r[phase] for r in rounds[name])
                          for name in SETUPS}
        plain, hand, ours, by_signal = (medians[phase][name] for name in SETUPS)
        print(f"{label:<20}{plain:>8.3f}{hand:>13.3f}{ours:>11.3f}{ours / hand:>7.2f}"
              f"{by_signal:>11.3f}")
    extra_ms = 1000 * (medians["ready"]["servercov"] - medians["ready"]["plain"])
    print(f"launch -> ready: servercov {extra_ms:+.0f} ms vs unmeasured (goal <= +100 ms), "
          f"{medians['ready']['servercov'] / medians['ready']['hand']:.2f} x the hand recipe "
          "(goal <= 1.00)")
    stops = sorted(r["stop"] for r in rounds["servercov-signal"])
    print(f"stop by signal of a process that saves (no shutdown_path): median "
          f"{medians['stop']['servercov-signal']:.3f} s, {stops[0]:.3f}-{stops[-1]:.3f} "
          "(goal <= 0.2 s)")
    if not args.quick:
        python = sys.version.split()[0]
        record(f"startup_stop[Python {python}]", {"rounds": args.rounds, "medians_s": medians})
        record(f"stop_by_signal[Python {python}]",
               {"rounds": args.rounds, "median_s": medians["stop"]["servercov-signal"],
                "range_s": [stops[0], stops[-1]]})


if __name__ == "__main__":
    main()
