"""Benchmark: what measuring a server costs at start-up and stop, side by side.

Run on demand from the repository root (never part of the test suite):

    .venv/bin/python bench/startup_stop.py [--rounds 10]

Each round, interleaved so machine noise hits all alike, starts the sample
API three ways, each polled until /0.0/health/ answers:
(a) plain: unmeasured, stopped by SIGTERM (its data would be lost: no data);
(b) the hand recipe: ``coverage run -p -m sample_api.server``, stopped by
    SIGINT (the recipe's shutdown route needs werkzeug.server.shutdown, gone
    since Werkzeug 2.1), then ``coverage combine`` and ``coverage html``;
(c) servercov's ServerSession: measured, stopped by the token-gated shutdown
    route, data combined and html written in-process.
It prints medians per phase and the ratio servercov / hand recipe.
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
from nose2_servercov.engine.network import http_status, pick_free_port  # noqa: E402
from nose2_servercov.engine.run import ServerSession  # noqa: E402


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


def measured_round(folder: Path) -> dict[str, float]:
    """Start the sample through ServerSession, stop it by its route, combine and report."""
    config = load_config(folder / ".apirc")
    session = ServerSession(config, err=io.StringIO(), out=io.StringIO())  # reports: term, html
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
        rounds: dict[str, list[dict[str, float]]] = {"plain": [], "hand": [], "servercov": []}
        for _ in range(args.rounds):
            rounds["plain"].append(baseline_round(folder, measured=False))
            rounds["hand"].append(baseline_round(folder, measured=True))
            rounds["servercov"].append(measured_round(folder))
    print(f"sample API, Werkzeug dev server, {args.rounds} interleaved rounds, medians in s")
    print(f"{'phase':<20}{'plain':>8}{'hand recipe':>13}{'servercov':>11}{'ratio':>7}")
    medians: dict[str, dict[str, float]] = {}
    for phase, label in (("ready", "start to ready"), ("stop", "stop"),
                         ("report", "combine + html")):
        plain, hand, ours = (statistics.median(r[phase] for r in rounds[name])
                             for name in ("plain", "hand", "servercov"))
        print(f"{label:<20}{plain:>8.3f}{hand:>13.3f}{ours:>11.3f}{ours / hand:>7.2f}")
        medians[phase] = {"plain": plain, "hand": hand, "servercov": ours}
    extra_ms = 1000 * (medians["ready"]["servercov"] - medians["ready"]["plain"])
    print(f"launch -> ready: servercov {extra_ms:+.0f} ms vs unmeasured (goal <= +100 ms), "
          f"{medians['ready']['servercov'] / medians['ready']['hand']:.2f} x the hand recipe "
          "(goal <= 1.00)")
    if not args.quick:
        record(f"startup_stop[Python {sys.version.split()[0]}]",
               {"rounds": args.rounds, "medians_s": medians})


if __name__ == "__main__":
    main()
