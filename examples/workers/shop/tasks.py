"""The Celery side: the app and the tasks its worker runs (``celery -A shop.tasks worker``)."""

import os

from celery import Celery

import nose2_servercov.celery

BROKER = os.environ.get("SHOP_REDIS_URL", "redis://127.0.0.1:6379/0")

app = Celery("shop", broker=BROKER, backend=BROKER)
app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"],
                broker_connection_retry_on_startup=True, worker_hijack_root_logger=False)
# The label of the test whose request enqueued a task travels with it (contexts = test).
nose2_servercov.celery.init_app(app)


@app.task
def price(quantity: int) -> int:
    """Price an order: a discount from ten items on."""
    if quantity >= 10:
        return quantity * 9
    return quantity * 10


@app.task
def refund(amount: int) -> str:
    """Refund an amount; a negative one is refused."""
    if amount < 0:
        raise ValueError("a negative refund")
    return f"refunded {amount}"
