"""Benchmark: ``contexts = test`` under sys.monitoring, every request labelled vs contexts off.

    .venv/bin/python bench/contexts_sysmon.py [--core sysmon] [--branch] [--rounds 7]
    .ci/in-chroot .ci/venvs/py3.14/bin/python bench/contexts_sysmon.py --core auto --branch

servercov re-arms sys.monitoring's events at each context switch, so
``contexts = test`` keeps the sysmon core (3.12+).  The goal: with every
request labelled (one label, as one test sends them), requests/s >= 0.95x
contexts off, same core.  The servers scenario's app under gunicorn -w 2 and
wrk (bench/throughput.py's setups), three setups per round, interleaved:
no coverage, ``servercov serve`` with contexts off, with contexts on and every
request labelled.  On a shared machine the load drifts between rounds, so
besides the medians it prints the median of each round's own ratio, whose two
runs were measured seconds apart.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import throughput


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--core", choices=("sysmon", "ctrace", "auto"), default="sysmon")
    parser.add_argument("--branch", action="store_true")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--quick", action="store_true", help="one short round: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 1.0
    env = {} if args.core == "auto" else {"COVERAGE_CORE": args.core}
    figures: dict[str, list[float]] = {"none": [], "off": [], "labelled": []}
    with tempfile.TemporaryDirectory(prefix="servercov-bench-") as folder:
        project = throughput.scenario_project(Path(folder), run=f"branch = {args.branch}\n")
        rc = project / ".apirc"
        rc.write_text(rc.read_text().replace("branch = True\n", ""))
        for round_ in range(args.rounds):
            figures["none"].append(throughput.plain(project, "gunicorn", args.seconds,
                                                    coverage=False, core_env=env))
            order = (("off", False), ("labelled", True))
            for name, contexts in order if round_ % 2 else order[::-1]:  # no order bias
                figures[name].append(throughput.servercov(project, "gunicorn", args.seconds,
                                                          contexts=contexts, core_env=env))
    median = {name: statistics.median(values) for name, values in figures.items()}
    pairs = statistics.median(on / off for on, off in zip(figures["labelled"], figures["off"],
                                                           strict=True))
    versus_none = statistics.median(off / none for off, none in zip(figures["off"],
                                                                    figures["none"], strict=True))
    print(f"requests/s, gunicorn -w 2, wrk -t1 -c8, {args.rounds} rounds x {args.seconds:g} s; "
          f"core={args.core}, {'branch' if args.branch else 'line'} coverage; "
          f"Python {sys.version.split()[0]}")
    print(f"  medians: none {median['none']:.0f}, contexts off {median['off']:.0f}, "
          f"every request labelled {median['labelled']:.0f}")
    print(f"  labelled/off: {median['labelled'] / median['off']:.3f} (medians), {pairs:.3f} "
          f"(median of rounds); contexts off/none: {versus_none:.3f} (median of rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
