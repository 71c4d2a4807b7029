"""``contexts = test`` through a job queue: the enqueuing side's label, the worker's turn.

A view that enqueues a job runs under its test's label (:func:`serving_label`);
the queue helpers (:mod:`nose2_servercov.celery`, :mod:`nose2_servercov.rq`) put
that label into the job, and the worker runs the job in its turn under it, as a
server runs a request.  Both halves are off unless servercov started the
process (``SERVERCOV_TOKEN``) with ``contexts = test``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from nose2_servercov.app.contexts import ContextSwitch, serving_label, switch_if_wanted
from nose2_servercov.protocol import TOKEN_VARIABLE


def job_switch() -> ContextSwitch | None:
    """Return the process's switch when jobs must carry labels, else None (a no-op)."""
    if not os.environ.get(TOKEN_VARIABLE):
        return None
    return switch_if_wanted()


def label_to_send() -> str | None:
    """Return the label a job enqueued here must carry: the request's, or the job's own."""
    return serving_label() or None


def run_under(switch: ContextSwitch, label: str | None) -> Callable[[], None]:
    """Take the worker's turn and switch to the job's label; return the release.

    A job enqueued outside any test switches to the empty context, so that its
    lines are never recorded under the test of the job the process ran before.
    The turn serializes the jobs of a threaded worker, as requests are: the
    context is one per process.
    """
    release = switch.hold(label or "")
    if not label:
        switch("")
    return release
