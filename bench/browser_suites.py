"""Benchmark: each examples/browser suite measured by ``servercov run`` vs an unmeasured server.

Run on demand from the repository root (never part of the test suite), after
``bash .ci/install-browser-deps``:

    .venv/bin/python bench/browser_suites.py [--rounds 5]

Each round, interleaved so machine noise hits all alike, runs every suite twice
in a fresh copy of examples/browser:
(a) measured: ``servercov run -- SUITE`` (contexts = test, html + term reports),
    timed whole, and the suite's own time inside it;
(b) unmeasured: ``serve.py`` started by hand without coverage, polled until
    /health/ answers, the suite run with SERVERCOV_URL pointing at it (timed),
    the server stopped by SIGTERM.
It prints medians: whole measured run, suite inside it, suite against the
unmeasured server, and the ratio of the two suite times.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "browser"
SUITES = {
    "selenium": [sys.executable, "-m", "unittest", "tests/test_selenium.py"],
    "playwright": [sys.executable, "-m", "unittest", "tests/test_playwright.py"],
    "javascript": ["node", "--test", "js/shelf.test.mjs"],
}
# Runs the suite given after it and writes its wall time to the file named first.
TIMED = ("import subprocess, sys, time; t = time.perf_counter(); "
         "code = subprocess.call(sys.argv[2:]); "
         "open(sys.argv[1], 'w').write(str(time.perf_counter() - t)); sys.exit(code)")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SERVERCOV_", "COVERAGE_"))}
    env.update(extra)
    return env


def copy_example(scratch: Path) -> Path:
    project = scratch / "browser"
    shutil.rmtree(project, ignore_errors=True)
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(
        "__pycache__", ".coverage*", "cover", "requests.jsonl", "node_modules"))
    (project / "js" / "node_modules").symlink_to(EXAMPLE / "js" / "node_modules")
    return project


def measured(project: Path, suite: list[str]) -> tuple[float, float]:
    """Return (whole run, suite inside it) in seconds for ``servercov run -- suite``."""
    inner = project / ".suite-seconds"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nose2_servercov", "run", "--", sys.executable,
                    "-c", TIMED, str(inner), *suite], cwd=project, env=clean_env(),
                   check=True, capture_output=True, timeout=300)
    return time.perf_counter() - started, float(inner.read_text())


def unmeasured(project: Path, suite: list[str]) -> float:
    """Return the suite's seconds against serve.py started without coverage."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "serve.py", "--port", str(port)], cwd=project,
                              env=clean_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/health/", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("serve.py did not answer") from None
                time.sleep(0.02)
        started = time.perf_counter()
        subprocess.run(suite, cwd=project, env=clean_env(SERVERCOV_URL=url), check=True,
                       capture_output=True, timeout=300)
        return time.perf_counter() - started
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    times: dict[str, dict[str, list[float]]] = {
        name: {"whole": [], "inside": [], "plain": []} for name in SUITES}
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(args.rounds):
            for name, suite in SUITES.items():
                whole, inside = measured(copy_example(Path(scratch)), suite)
                times[name]["whole"].append(whole)
                times[name]["inside"].append(inside)
                times[name]["plain"].append(unmeasured(copy_example(Path(scratch)), suite))
    print(f"medians of {args.rounds} rounds, seconds")
    print(f"{'suite':<11} {'servercov run':>14} {'suite inside':>13} {'unmeasured':>11} "
          f"{'ratio':>6}")
    for name, got in times.items():
        whole, inside, plain = (statistics.median(got[k]) for k in ("whole", "inside", "plain"))
        print(f"{name:<11} {whole:>14.2f} {inside:>13.2f} {plain:>11.2f} {inside / plain:>6.2f}")


if __name__ == "__main__":
    main()
