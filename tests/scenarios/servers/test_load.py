"""Send the mixed request plan to the live server from 8 threads at once.

Run by tests/acceptance/test_servers.py under ``nose2 --with-servercov``.
What it asks for comes from the environment:

- LOAD_WORKERS: how many worker processes must answer (each must serve traffic);
  "N+" means at least N (workers recycled by max-requests);
- LOAD_RESETS_OK=1: a connection the server resets is not a problem (a recycled
  uvicorn worker resets, or leaves unanswered, connections it accepted but had
  not read yet: such a request is sent again, up to 10 times);
- LOAD_REPETITIONS: how many times the plan is sent in all (default 56);
- LOAD_KILL=1: SIGKILL the worker that answered /once/a/ half-way, wait until a
  respawned worker answers, then send the second half and /after/kill/.

What happened is written to load.json beside this file for the pytest side:
the pids that answered, which pid answered each one-off request, the victim.
"""

import json
import os
import pathlib
import signal
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

import requests

HERE = pathlib.Path(__file__).parent
PLAN = json.loads((HERE / "plan.json").read_text())
THREADS = 8
ONCE = ("a", "b", "c", "d")
DEADLINE_SECONDS = 90.0
REQUEST_TIMEOUT = 10.0


class Load:
    """Requests sent and what came back, shared by the sending threads."""

    def __init__(self, base: str, deadline: float) -> None:
        self.base = base
        self.deadline = deadline
        self.lock = threading.Lock()
        self.sent = 0
        self.problems: list[str] = []
        self.pids: set[int] = set()
        self.threads: set[tuple[int, int]] = set()
        self.one_off: dict[str, int] = {}

    def send(self, method: str, path: str, body: object, status: int) -> dict | None:
        if os.environ.get("LOAD_RESETS_OK") == "1":
            for _ in range(10):  # until a worker that is not recycling answers
                try:
                    return self._send(method, path, body, status, timeout=3.0)
                except (requests.ConnectionError, requests.Timeout):
                    continue
        try:
            return self._send(method, path, body, status)
        except requests.RequestException as exc:
            with self.lock:
                self.problems.append(f"{method} {path}: {exc!r}")
            return None

    def _send(self, method: str, path: str, body: object, status: int,
              timeout: float = REQUEST_TIMEOUT) -> dict | None:
        response = requests.request(method, self.base + path, json=body, timeout=timeout)
        with self.lock:
            self.sent += 1
            if response.status_code != status:
                self.problems.append(f"{method} {path}: {response.status_code}, "
                                     f"expected {status}")
                return None
        if path == "/pid/" or path.startswith(("/once/", "/after/")):
            answer = response.json()
            with self.lock:
                self.pids.add(answer["pid"])
                if "thread" in answer:
                    self.threads.add((answer["pid"], answer["thread"]))
            return answer
        return None

    def worker(self, index: int, repetitions: int, one_off: list[str]) -> None:
        # Each thread walks the plan from its own starting point, so the mix varies.
        order = PLAN[index % len(PLAN):] + PLAN[:index % len(PLAN)]
        for rep in range(repetitions):
            if time.monotonic() > self.deadline:
                with self.lock:
                    self.problems.append(f"thread {index}: deadline passed at repetition {rep}")
                return
            if rep == repetitions // 2:
                for path in one_off:
                    answer = self.send("GET", path, None, 200)
                    if answer is not None:
                        with self.lock:
                            self.one_off[path] = answer["pid"]
            for method, path, body, status in order:
                self.send(method, path, body, status)

    def phase(self, repetitions: int, one_off: dict[int, list[str]]) -> set[int]:
        """Send ``repetitions`` of the plan over 8 threads; return the pids seen."""
        before = set(self.pids)
        self.pids.clear()
        per_thread = [repetitions // THREADS + (i < repetitions % THREADS)
                      for i in range(THREADS)]
        with ThreadPoolExecutor(THREADS) as pool:
            for future in [pool.submit(self.worker, i, per_thread[i], one_off.get(i, []))
                           for i in range(THREADS)]:
                future.result()
        seen = set(self.pids)
        self.pids |= before
        return seen

    def reach_every_worker(self, seen: set[int], workers: int, timeout: float) -> set[int]:
        """Ask /pid/ from 8 threads until ``workers`` pids answered; return them all.

        A phase of the plan may, by chance, never reach one worker of several: the
        test needs every worker to have served before it kills one.
        """
        seen = set(seen)
        end = min(time.monotonic() + timeout, self.deadline)
        with ThreadPoolExecutor(THREADS) as pool:
            while len(seen) < workers and time.monotonic() < end:
                answers = list(pool.map(lambda _: self.send("GET", "/pid/", None, 200),
                                        range(THREADS)))
                seen |= {a["pid"] for a in answers if a}
        self.pids |= seen
        return seen

    def wait_for_new_pid(self, known: set[int], timeout: float) -> int | None:
        """Ask /pid/ from 8 threads until a pid not in ``known`` answers."""
        end = min(time.monotonic() + timeout, self.deadline)
        with ThreadPoolExecutor(THREADS) as pool:
            while time.monotonic() < end:
                answers = list(pool.map(lambda _: self.send("GET", "/pid/", None, 200),
                                        range(THREADS)))
                new = {a["pid"] for a in answers if a} - known
                if new:
                    return new.pop()
                time.sleep(0.05)
        return None


class LoadTest(unittest.TestCase):
    def test_concurrent_mixed_load(self):
        at_least = os.environ["LOAD_WORKERS"].endswith("+")
        workers = int(os.environ["LOAD_WORKERS"].rstrip("+"))
        repetitions = int(os.environ.get("LOAD_REPETITIONS", "56"))
        load = Load(os.environ["SERVERCOV_URL"], time.monotonic() + DEADLINE_SECONDS)
        record: dict[str, object] = {}
        once = {i: [f"/once/{name}/"] for i, name in enumerate(ONCE)}
        if os.environ.get("LOAD_KILL") != "1":
            seen = load.reach_every_worker(load.phase(repetitions, once), workers, 30.0)
            record["pids"] = sorted(seen)
        else:
            first = load.reach_every_worker(load.phase(repetitions // 2, once), workers, 30.0)
            victim = load.one_off["/once/a/"]
            os.kill(victim, signal.SIGKILL)
            respawned = load.wait_for_new_pid(first, timeout=30.0)
            self.assertIsNotNone(respawned, "no respawned worker answered within 30 s")
            second = load.phase(repetitions - repetitions // 2, {0: ["/after/kill/"]})
            record.update(pids=sorted(first | second), before_kill=sorted(first),
                          after_kill=sorted(second | {respawned}), victim=victim,
                          respawned=respawned)
            self.assertNotIn(victim, second, "the killed worker answered after its death")
            self.assertEqual(len(first), workers, f"pids before the kill: {sorted(first)}")
            seen = first | second | {respawned}
            workers += 1  # the victim and its successor
        record.update(one_off=load.one_off, sent=load.sent, problems=load.problems,
                      threads=len(load.threads))
        (HERE / "load.json").write_text(json.dumps(record, indent=1))
        self.assertEqual(load.problems, [])
        if at_least:
            self.assertGreaterEqual(len(seen), workers, f"pids that answered: {sorted(seen)}")
        else:
            self.assertEqual(len(seen), workers, f"pids that answered: {sorted(seen)}")
        self.assertEqual(sorted(load.one_off), sorted(
            [f"/once/{n}/" for n in ONCE] + (["/after/kill/"] if "victim" in record else [])))
