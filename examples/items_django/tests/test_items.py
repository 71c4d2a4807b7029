"""The Django items API, tested over HTTP against the live server."""

from nose2_servercov import ServerTestCase


class ItemsTest(ServerTestCase):
    def test_health(self) -> None:
        self.assertEqual(self.get("/health/").json(), {"status": "ok"})

    def test_an_item_and_a_missing_one(self) -> None:
        self.assertEqual(self.get("/items/1/").json(), {"number": 1, "name": "pen"})
        self.assertEqual(self.get("/items/9/").status_code, 404)
