"""Celery helper: under ``contexts = test``, a task runs under the label of its test.

    app = Celery("shop", broker=...)
    nose2_servercov.celery.init_app(app)

The label of the request being served when a task is published travels in
the task message's headers (Celery's ``before_task_publish`` signal); the
worker switches coverage's context to it around the task's run
(``task_prerun`` / ``task_postrun``).  A no-op unless servercov started the
process with ``contexts = test``: the same app ships to production.  Celery is
never imported here; the signals are taken from the app handed in.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from nose2_servercov.app.contexts import ContextSwitch
from nose2_servercov.app.queued import job_switch, label_to_send, run_under
from nose2_servercov.protocol import JOB_CONTEXT_KEY

__all__ = ["init_app"]


class _TaskContexts:
    """The three signal receivers, sharing the process's switch and the tasks' releases."""

    def __init__(self, switch: ContextSwitch) -> None:
        self.switch = switch
        self.releases: dict[str, Callable[[], None]] = {}

    def publishing(self, sender: Any = None, headers: Any = None, **_: Any) -> None:
        label = label_to_send()
        if label and isinstance(headers, dict):
            headers[JOB_CONTEXT_KEY] = label

    def starting(self, sender: Any = None, task_id: Any = None, task: Any = None,
                 **_: Any) -> None:
        request = getattr(task, "request", None)
        if request is None or getattr(request, "is_eager", False):
            return  # an eager task runs inside the request that called it, under its label
        label = getattr(request, JOB_CONTEXT_KEY, None)
        self.releases[str(task_id)] = run_under(self.switch, label if isinstance(label, str)
                                                else None)

    def finished(self, sender: Any = None, task_id: Any = None, **_: Any) -> None:
        release = self.releases.pop(str(task_id), None)
        if release is not None:
            release()


def init_app(app: Any) -> Any:
    """Make ``app``'s tasks carry the test label under ``contexts = test``; return ``app``."""
    switch = job_switch()
    if switch is None:
        return app
    signals = sys.modules.get("celery.signals")
    if signals is None:
        import importlib

        signals = importlib.import_module("celery.signals")
    receivers = _TaskContexts(switch)
    for name, receiver in (("before_task_publish", receivers.publishing),
                           ("task_prerun", receivers.starting),
                           ("task_postrun", receivers.finished)):
        getattr(signals, name).connect(receiver, weak=False,
                                       dispatch_uid=f"servercov-{name}")
    return app
