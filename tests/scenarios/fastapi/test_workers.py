"""Ask /worker/first/ and /worker/second/ of two different worker processes.

A kept-alive connection stays with the worker that accepted it, so open
connections until two are served by different pids, then send one request on
each.  Only when LOAD_WORKERS is 2; what answered goes to workers.json.
"""

import http.client
import json
import os
import pathlib
import unittest
import urllib.parse

HERE = pathlib.Path(__file__).parent
MAX_CONNECTIONS = 64


def get(conn: http.client.HTTPConnection, path: str) -> dict:
    conn.request("GET", path)
    answer = conn.getresponse()
    body = answer.read()
    assert answer.status == 200, (path, answer.status)
    return json.loads(body)


class WorkersTest(unittest.TestCase):
    def test_each_worker_answers_its_own_route(self):
        if os.environ.get("LOAD_WORKERS", "1") != "2":  # not with recycled workers
            return
        url = urllib.parse.urlsplit(os.environ["SERVERCOV_URL"])
        by_pid: dict[int, http.client.HTTPConnection] = {}
        opened = []
        try:
            for _ in range(MAX_CONNECTIONS):
                conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
                opened.append(conn)
                by_pid.setdefault(get(conn, "/pid/")["pid"], conn)
                if len(by_pid) >= 2:
                    break
            self.assertGreaterEqual(len(by_pid), 2, "one worker took every connection")
            first, second = list(by_pid.values())[:2]
            answered = {"first": get(first, "/worker/first/")["pid"],
                        "second": get(second, "/worker/second/")["pid"]}
        finally:
            for conn in opened:
                conn.close()
        (HERE / "workers.json").write_text(json.dumps(answered))
        self.assertNotEqual(answered["first"], answered["second"])
