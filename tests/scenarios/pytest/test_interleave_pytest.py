"""pytest side of interleave.py: the fixture session sends the node id as context."""

from interleave import send_for_a_while


def send_with(session):
    return lambda method, path, body: session.request(method, path, json=body).status_code


def test_a(servercov_session):
    assert send_for_a_while("a", send_with(servercov_session)) > 0


def test_b(servercov_session):
    assert send_for_a_while("b", send_with(servercov_session)) > 0
