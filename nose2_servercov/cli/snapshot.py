"""``servercov snapshot`` and ``servercov stop``: talk to the running serve of the rcfile.

``snapshot`` has the serve take the snapshot (it has coverage imported and
its processes at hand) and prints its answer as its own; ``stop`` signals
it and waits until it has written its final reports.  Both find the serve
through its state file (:mod:`nose2_servercov.engine.serve`); neither
imports coverage, so they start fast beside a server under load.
"""

from __future__ import annotations

import argparse
import sys

from nose2_servercov.cli.entry import config_of, say
from nose2_servercov.engine.serve import snapshot_of_running_serve, stop_running_serve
from nose2_servercov.errors import ServeError


def snapshot(args: argparse.Namespace) -> int:
    """Run ``servercov snapshot``: print the serve's answer, exit with its status."""
    answer = snapshot_of_running_serve(config_of(args))
    sys.stdout.write(answer.stdout)
    sys.stdout.flush()
    sys.stderr.write(answer.stderr)
    sys.stderr.flush()
    return answer.status


def stop(args: argparse.Namespace) -> int:
    """Run ``servercov stop``: the serve stops, reports, and this says so."""
    pid, final = stop_running_serve(config_of(args))
    if final is None:  # it ended without its final lines: nothing says it reported
        raise ServeError(f"the serve (pid {pid}) stopped without saying that it wrote its "
                         "final reports: see its output")
    if final.reported:
        say(f"the serve (pid {pid}) stopped and wrote its final reports")
    sys.stderr.write(final.stderr)  # the total and the report places, as the serve printed them
    sys.stderr.flush()
    if final.reported:
        return 0
    why = "why is above" if final.stderr.strip() else "why is in the serve's output"
    say(f"error: the serve (pid {pid}) stopped, but did not write its final reports (exit "
        f"status {final.status}; {why})")
    return final.status or 1
