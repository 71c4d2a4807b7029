"""nose2 (mp plugin) side of interleave.py: ServerTestCase sends its test id as context.

One class per test: nose2's mp plugin sends a class with class fixtures as one unit.
"""

from interleave import send_for_a_while

from nose2_servercov import ServerTestCase


class A(ServerTestCase):
    def test_a(self):
        send = lambda method, path, body: self.request(method, path, json=body).status_code  # noqa: E731
        self.assertGreater(send_for_a_while("a", send), 0)


class B(ServerTestCase):
    def test_b(self):
        send = lambda method, path, body: self.request(method, path, json=body).status_code  # noqa: E731
        self.assertGreater(send_for_a_while("b", send), 0)
