"""RQ helper: with ``contexts = test``, a job runs under the label of the test that enqueued it.

    queue = Queue(connection=redis, job_class=nose2_servercov.rq.Job)
    rq worker --job-class nose2_servercov.rq.Job

The label of the request being served when a job is created travels in the
job's ``meta``; the work horse switches coverage's context to it around the
job's run.  A no-op unless servercov started the process with
``contexts = test``.  RQ is imported only when this module is (it is the
job class's base), never by servercov itself: it is no dependency.
"""

from __future__ import annotations

from typing import Any

from rq.job import Job as _RQJob

from nose2_servercov.app.queued import job_switch, label_to_send, run_under
from nose2_servercov.protocol import JOB_CONTEXT_KEY

__all__ = ["Job"]


class Job(_RQJob):
    """RQ's ``Job`` that carries the test label from the enqueuing request to the worker."""

    @classmethod
    def create(cls, *args: Any, **kwargs: Any) -> Any:
        job = super().create(*args, **kwargs)
        label = label_to_send() if job_switch() is not None else None
        if label:
            job.meta[JOB_CONTEXT_KEY] = label
        return job

    def perform(self) -> Any:
        switch = job_switch()
        if switch is None:
            return super().perform()
        label = self.meta.get(JOB_CONTEXT_KEY)
        release = run_under(switch, label if isinstance(label, str) else None)
        try:
            return super().perform()
        finally:
            release()
