"""Send plan.json to the live runserver from 6 threads at once, 10 times over."""

import json
import pathlib
from concurrent.futures import ThreadPoolExecutor

import requests

from nose2_servercov import ServerTestCase

PLAN = json.loads((pathlib.Path(__file__).parent / "plan.json").read_text())


class PlanTest(ServerTestCase):
    def send(self, step):
        method, path, body, status = step
        # One connection per request: a requests.Session is not for many threads.
        if isinstance(body, str):
            answer = requests.request(method, self.url(path), data=body, timeout=10)
        else:
            answer = requests.request(method, self.url(path), json=body, timeout=10)
        return path, answer.status_code, status

    def test_plan_concurrently(self):
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(self.send, PLAN * 10))
        wrong = [(path, got, expected) for path, got, expected in results if got != expected]
        self.assertEqual(wrong, [])
