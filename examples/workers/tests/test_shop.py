"""The shop API over HTTP against the live server, its work done by the live workers."""

from nose2_servercov import ServerTestCase


class ShopTest(ServerTestCase):
    def test_prices(self) -> None:  # Celery
        self.assertEqual(self.get("/price/3").json(), {"price": 30})
        self.assertEqual(self.get("/price/12").json(), {"price": 108})

    def test_refunds(self) -> None:  # Celery, a task that raises
        self.assertEqual(self.get("/refund/5").json(), {"refund": "refunded 5"})
        self.assertEqual(self.get("/refund/-1").status_code, 400)

    def test_invoice(self) -> None:  # RQ
        self.assertEqual(self.get("/invoice/7").json(), {"invoice": "I-7"})

    def test_shipping(self) -> None:  # RQ
        self.assertEqual(self.get("/ship/4/1").json(), {"ship": "express 4"})
