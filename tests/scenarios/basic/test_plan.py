"""Replay plan.json against the live server, one test per request."""

import json
import os
import pathlib
import time

import requests

from nose2_servercov import ServerTestCase

PLAN = json.loads((pathlib.Path(__file__).parent / "plan.json").read_text())


class PlanTest(ServerTestCase):
    def test_plan(self):
        for method, path, body, status in PLAN:
            with self.subTest(path=path):
                self.assertEqual(self.request(method, path, json=body).status_code, status)

    def test_scenario_extra(self):
        """What the scenario asks for through SCENARIO: fail, crash, or wait to be killed."""
        what = os.environ.get("SCENARIO", "")
        if what == "inprocess":
            from webapp import create_app

            self.assertEqual(create_app().test_client().get("/never/").status_code, 200)
        if what == "once":
            self.assertEqual(self.get("/once/b/").text, "b")
        if what == "again":  # lines test_plan ran too: recorded under both tests
            self.assertEqual(self.get("/items/7/").json()["kind"], "odd")
        if what == "fail":
            self.fail("this test fails on purpose")
        if what == "crash":
            self.get("/once/b/")
            with self.assertRaises(requests.ConnectionError):
                self.get("/crash/")
        if what == "wait":
            self.get("/once/b/")
            pathlib.Path("waiting").write_text(str(os.getpid()))
            time.sleep(60)  # the functional test interrupts the run here
