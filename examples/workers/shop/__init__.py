"""A small shop API whose views hand work to a Celery worker and an RQ worker."""
