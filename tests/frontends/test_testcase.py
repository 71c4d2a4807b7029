"""ServerTestCase's URL joining and its error without a server (no network needed)."""

from __future__ import annotations

import unittest

import pytest

from nose2_servercov import ServerTestCase


class Versioned(ServerTestCase):
    prefix = "0.0"

    def test_nothing(self):
        pass


@pytest.mark.parametrize(("base", "prefix", "path", "url"), [
    ("http://h:1", "0.0", "items/1", "http://h:1/0.0/items/1"),
    ("http://h:1/", "/0.0/", "/items/1", "http://h:1/0.0/items/1"),
    ("http://h:1", "", "/items/1/", "http://h:1/items/1/"),
    ("http://h:1/api", "v2", "", "http://h:1/api/v2/"),
])
def test_paths_join_base_prefix_and_path(monkeypatch, base, prefix, path, url):
    monkeypatch.setenv("SERVERCOV_URL", base)
    case = Versioned("test_nothing")
    monkeypatch.setattr(Versioned, "prefix", prefix)
    assert case.url(path) == url


def test_base_url_attribute_is_the_fallback(monkeypatch):
    monkeypatch.delenv("SERVERCOV_URL", raising=False)
    monkeypatch.setattr(Versioned, "base_url", "http://staging:80")
    assert Versioned("test_nothing").url("x") == "http://staging:80/0.0/x"


def test_without_a_url_the_test_errors_saying_how_to_run_it(monkeypatch):
    monkeypatch.delenv("SERVERCOV_URL", raising=False)

    class NoServer(ServerTestCase):
        def test_get(self):
            self.get("/")

    result = unittest.TestResult()
    NoServer("test_get").run(result)
    assert len(result.errors) == 1
    assert "run the tests with 'nose2 --with-servercov'" in result.errors[0][1]
