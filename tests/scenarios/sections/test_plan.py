"""Replay plan.json against the API, and check what the tests see of the sections."""

import json
import os
import pathlib
import socket
import time

import requests

from nose2_servercov import ServerTestCase

PLAN = json.loads((pathlib.Path(__file__).parent / "plan.json").read_text())


class PlanTest(ServerTestCase):
    def test_plan(self):
        for method, path, body, status in PLAN:
            with self.subTest(path=path):
                self.assertEqual(self.request(method, path, json=body).status_code, status)

    def test_sections_are_in_the_environment(self):
        inventory = os.environ["SERVERCOV_URL_INVENTORY"]
        self.assertEqual(inventory, f"http://127.0.0.1:{os.environ['SERVERCOV_PORT_INVENTORY']}")
        self.assertEqual(requests.get(f"{inventory}/missing", timeout=10).status_code, 404)
        with socket.create_connection(("127.0.0.1", int(os.environ["SERVERCOV_PORT_REDIS"]))) as s:
            s.sendall(b"PING\r\n")
            self.assertEqual(s.recv(16), b"+PONG\r\n")
        pathlib.Path("environment.json").write_text(json.dumps(
            {k: v for k, v in os.environ.items() if k.startswith("SERVERCOV_")}))
        if os.environ.get("SCENARIO") == "wait":
            pathlib.Path("waiting").write_text(str(os.getpid()))
            time.sleep(60)  # the functional test interrupts the run here
