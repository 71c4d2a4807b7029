"""Combine + html report of 4, 16 and 64 per-process data files: servercov vs coverage.

    .venv/bin/python bench/report_time.py [--rounds 5] [--quick]

The data files are real coverage data of the sample API: each is a copy of
one in-process run of three requests, branch coverage on, so each file holds
what a lightly used server process leaves.  Alternating round by round:

- ``servercov``: ``data.combine_and_report`` as the session runs it at the end
  of a run (in the test runner's process, which is already running);
- ``coverage-api``: coverage's own API doing the same in-process
  (``Coverage.combine()`` then ``html_report()``): our overhead over coverage;
- ``coverage-cli``: ``coverage combine && coverage html``, the hand flow's
  two commands.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import coverage
from common import REPO, median, python_env, record

from nose2_servercov.engine import data


def one_measured_run(folder: Path) -> Path:
    """Measure the sample API's views in-process once; return the data file."""
    script = ("import coverage, sys\n"
              "cov = coverage.Coverage(data_file=sys.argv[1], source=['sample_api'], "
              "branch=True)\n"
              "cov.start()\n"
              "from sample_api.app import create_app\n"
              "client = create_app().test_client()\n"
              "for path in ('/0.0/health/', '/0.0/users/', '/0.0/nope/'):\n"
              "    client.get(path)\n"
              "cov.stop(); cov.save()\n")
    target = folder / "one.data"
    subprocess.run([sys.executable, "-c", script, str(target)], cwd=REPO, env=python_env(),
                   check=True)
    return target


def prepare(folder: Path, source: Path, count: int) -> None:
    for old in folder.glob(".coverage*"):
        old.unlink()
    for number in range(count):
        shutil.copy(source, folder / f".coverage.host.pid{1000 + number}.X{number}")
    shutil.rmtree(folder / "html", ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds, counts = (1, (4,)) if args.quick else (args.rounds, (4, 16, 64))
    table: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="servercov-bench-") as tmp:
        folder = Path(tmp)
        source = one_measured_run(folder)
        rcfile = folder / ".apirc"
        rcfile.write_text(f"[run]\nbranch = True\nparallel = True\nsource = {REPO / 'sample_api'}\n"
                          f"[html]\ndirectory = {folder / 'html'}\n"
                          "[servercov]\ncommand = true\n")
        settings = data.server_settings(rcfile)

        def ours() -> None:
            data.combine_and_report(settings, ("html",), io.StringIO())

        def api() -> None:
            cov = coverage.Coverage(config_file=str(rcfile), data_file=str(folder / ".coverage"))
            cov.combine(strict=True)
            cov.save()
            cov.html_report()

        def cli() -> None:
            for step in ("combine", "html"):
                subprocess.run([sys.executable, "-m", "coverage", step, "-q",
                                f"--rcfile={rcfile}"], cwd=folder, check=True,
                               env=python_env(COVERAGE_FILE=str(folder / ".coverage")))

        for count in counts:
            figures: dict[str, list[float]] = {"servercov": [], "coverage-api": [],
                                               "coverage-cli": []}
            for _ in range(rounds):
                for name, call in (("servercov", ours), ("coverage-api", api),
                                   ("coverage-cli", cli)):
                    prepare(folder, source, count)
                    started = time.perf_counter()
                    call()
                    figures[name].append(time.perf_counter() - started)
                    if not (folder / "html" / "index.html").exists():
                        raise RuntimeError(f"{name} wrote no html report")
            row = {name: median(values) for name, values in figures.items()}
            for other in ("coverage-api", "coverage-cli"):
                row[f"servercov/{other}"] = median(
                    [a / b for a, b in zip(figures["servercov"], figures[other], strict=True)])
            table[count] = row
    print(f"combine + html, {rounds} alternating rounds, medians (s)")
    for count, row in table.items():
        print(f"  {count:>3} files: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()))
    if not args.quick:
        record("report_time", {"rounds": rounds, "by_files": table})
    return 0


if __name__ == "__main__":
    sys.exit(main())
