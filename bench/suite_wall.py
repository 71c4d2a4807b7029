"""Wall time of the sample API's view suite: servercov vs the ideal hand-made shell flow.

    .venv/bin/python bench/suite_wall.py [--rounds 7] [--quick]

Three ways to run the same 13 view tests (tests/views) against the sample API
measured, with the same rcfile, from a copy of the repository's sample in a
temp folder, alternating round by round:

- ``nose2``: ``nose2 --with-servercov``;
- ``run``: ``servercov run -- python -m nose2``;
- ``hand``: the best shell script a careful user writes (HAND_FLOW below):
  ``coverage run -p`` in the background with ``COVERAGE_PROCESS_START``, a
  5 ms readiness poll with curl, the tests, a curl to the shutdown route,
  wait for the server, ``coverage combine``, ``coverage html``.

Each figure is the whole command's wall time; the ratios are taken pair by
pair within a round, and the medians printed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, median, python_env, record

HAND_FLOW = r"""
set -e
export COVERAGE_PROCESS_START=$PWD/.apirc SERVERCOV_TOKEN=hand-token
port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
"$PY" -m coverage run --rcfile=.apirc -p -m sample_api.server --host 127.0.0.1 --port "$port" \
    >/dev/null 2>&1 &
server=$!
until curl -s -o /dev/null "http://127.0.0.1:$port/0.0/health/"; do sleep 0.005; done
SERVERCOV_URL="http://127.0.0.1:$port" "$PY" -m nose2 -q || status=$?
curl -s -o /dev/null -X POST -H "X-Servercov-Token: hand-token" \
    "http://127.0.0.1:$port/0.0/shutdown/"
wait "$server" || true
"$PY" -m coverage combine -q --rcfile=.apirc
"$PY" -m coverage html -q --rcfile=.apirc
exit "${status:-0}"
"""


def sample_copy(folder: Path) -> Path:
    """Copy the sample API, its view tests, .apirc and unittest.cfg into ``folder``."""
    project = folder / "sample"
    for name in ("sample_api", "tests/views"):
        shutil.copytree(REPO / name, project / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    (project / "tests" / "__init__.py").touch()
    for name in (".apirc", "unittest.cfg"):
        shutil.copy(REPO / name, project / name)
    return project


def timed(argv: list[str], project: Path, **env: str) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=project, env=python_env(**env), capture_output=True,
                          text=True, timeout=300)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{argv} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    if not (project / "cover" / "index.html").exists():
        raise RuntimeError(f"{argv} wrote no html report")
    shutil.rmtree(project / "cover")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="one round: a smoke run")
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    py = sys.executable
    ways = {
        "nose2": [py, "-m", "nose2", "--with-servercov", "-q"],
        "run": [py, "-m", "nose2_servercov", "run", "--", py, "-m", "nose2", "-q"],
        "hand": ["bash", "-c", HAND_FLOW],
    }
    figures: dict[str, list[float]] = {name: [] for name in ways}
    with tempfile.TemporaryDirectory(prefix="servercov-bench-") as folder:
        project = sample_copy(Path(folder))
        timed(ways["hand"], project, PY=py)  # warm-up: bytecode, page cache
        for _ in range(rounds):
            for name, argv in ways.items():
                figures[name].append(timed(argv, project, PY=py))
    ratios = {name: median([a / b for a, b in zip(figures[name], figures["hand"], strict=True)])
              for name in ("nose2", "run")}
    print(f"sample API view suite, {rounds} alternating rounds, wall seconds (median)")
    for name, values in figures.items():
        print(f"  {name:<6} {median(values):.3f} s")
    for name, ratio in ratios.items():
        print(f"  {name} / hand flow: {ratio:.3f} (goal <= 0.80)")
    if not args.quick:
        record("suite_wall", {"rounds": rounds,
                              "seconds": {n: median(v) for n, v in figures.items()},
                              "ratio_vs_hand": ratios})
    return 0


if __name__ == "__main__":
    sys.exit(main())
