"""Requests/s of a measured server by coverage core, against no coverage (run on demand).

    <venv>/bin/python bench/cores.py [--rounds 5] [--seconds 3] [--branch]

Copies the functional tests' basic scenario app into a temp folder and serves
it with ``gunicorn -w 2`` three ways, interleaved round by round so machine
noise hits all alike: (none) unmeasured, started directly; (auto) under
``servercov run`` with ``[servercov] core = auto``; (ctrace) the same with
``core = ctrace``.  Each round runs ``wrk -t2 -c8 -d<seconds>s`` (Debian's
``wrk``) against ``/items/1/`` and reads its Requests/sec.  Line coverage
unless ``--branch``.  Prints per setup the median, the runs, and the median
relative to no coverage, plus the core servercov's start line named.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nose2_servercov.engine.server.network import http_status, pick_free_port  # noqa: E402
from tests.support import make_project, python_env  # noqa: E402

BIN = Path(sys.executable).parent
GUNICORN = "{gunicorn} -w 2 -b 127.0.0.1:{port} webapp:create_app()"
WRK = "wrk -t2 -c8 -d{seconds:g}s {url}/items/1/"


def _requests_per_second(output: str) -> float:
    found = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    if not found:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{output}")
    return float(found[1])


def _wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("gunicorn exited before it was ready")
        try:
            if http_status("GET", f"http://127.0.0.1:{port}/health/", timeout=1) < 500:
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("gunicorn was not ready within 60 s")


def unmeasured(project: Path, seconds: float) -> float:
    """Serve with plain gunicorn, load it with wrk, stop it; return requests/s."""
    port = pick_free_port("127.0.0.1")
    command = GUNICORN.format(gunicorn=BIN / "gunicorn", port=port).split()
    server = subprocess.Popen(command, cwd=project, env=python_env(), start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_ready(port, server)
        load = subprocess.run(WRK.format(seconds=seconds, url=f"http://127.0.0.1:{port}").split(),
                              capture_output=True, text=True, check=True, timeout=120)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    return _requests_per_second(load.stdout)


def measured(project: Path, core: str, seconds: float) -> tuple[float, str]:
    """Serve under ``servercov run`` with ``core``; return requests/s and the core it named."""
    rcfile = project / ".apirc"
    text = re.sub(r"^core = \w+\n", "", rcfile.read_text(), flags=re.M)
    rcfile.write_text(text.rstrip("\n") + f"\ncore = {core}\n")
    wrk = WRK.format(seconds=seconds, url='"$SERVERCOV_URL"')
    run = subprocess.run([sys.executable, "-m", "nose2_servercov", "run", "--", "sh", "-c", wrk],
                         cwd=project, env=python_env(COVERAGE_CORE=""), capture_output=True,
                         text=True, timeout=300)
    if run.returncode != 0:
        raise RuntimeError(f"servercov run failed:\n{run.stderr}")
    named = re.search(r"server started: .*, (core .*)$", run.stderr, re.M)
    return _requests_per_second(run.stdout), named[1] if named else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--branch", action="store_true", help="branch coverage, not lines")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    with tempfile.TemporaryDirectory(prefix="servercov-bench-") as scratch:
        project = make_project(Path(scratch), servercov=(
            f"command = {GUNICORN.format(gunicorn=BIN / 'gunicorn', port='{port}')}\n"
            "ready_path = /health/\nreports = json\n"))
        rcfile = project / ".apirc"
        rcfile.write_text(rcfile.read_text().replace(
            "branch = True", f"branch = {args.branch}"))
        results: dict[str, list[float]] = {"none": [], "auto": [], "ctrace": []}
        named: dict[str, str] = {}
        for number in range(args.rounds):
            results["none"].append(unmeasured(project, args.seconds))
            for core in ("auto", "ctrace"):
                rate, named[core] = measured(project, core, args.seconds)
                results[core].append(rate)
            print(f"round {number + 1}: " + ", ".join(f"{k} {v[-1]:.0f}"
                                                     for k, v in results.items()), flush=True)
    base = statistics.median(results["none"])
    print(f"Python {sys.version.split()[0]}, {'branch' if args.branch else 'line'} coverage, "
          f"gunicorn -w 2, wrk -t2 -c8 -d{args.seconds:g}s, {args.rounds} alternating rounds")
    for setup, rates in results.items():
        median = statistics.median(rates)
        runs = " ".join(f"{rate:.0f}" for rate in rates)
        print(f"  {setup:7} median {median:7.0f} req/s  ({median / base:.2f}x none)  "
              f"{named.get(setup, 'no coverage')}  runs: {runs}")


if __name__ == "__main__":
    main()
