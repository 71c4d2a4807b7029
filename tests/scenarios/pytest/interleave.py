"""Two tests that send requests at the same time, each to its own routes.

Each test announces itself with a file and waits for the other one before
sending, so their requests interleave on the server: a context label that
leaked from one test to the other would show as lines of the wrong routes.
"""

from __future__ import annotations

import os
import pathlib
import time

MEET = pathlib.Path(os.environ.get("MEET_DIR", "."))
SECONDS = 1.5
# test name -> the requests it sends over and over (odd items for a, even for b)
REQUESTS = {
    "a": [["GET", "/once/a/", None, 200], ["GET", "/items/1/", None, 200]],
    "b": [["GET", "/once/b/", None, 200], ["GET", "/items/2/", None, 200],
          ["POST", "/echo/", {"b": 2}, 200]],
}


def meet(name: str) -> None:
    """Wait (at most 30 s) until the other test has started too."""
    (MEET / f"meet.{name}").write_text(str(os.getpid()))
    other = MEET / f"meet.{'b' if name == 'a' else 'a'}"
    deadline = time.monotonic() + 30
    while not other.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"test {name}: the other test never ran at the same time")
        time.sleep(0.01)


def send_for_a_while(name: str, send) -> int:
    """Send the test's requests again and again for SECONDS; return how many."""
    meet(name)
    count = 0
    started = time.monotonic()
    while time.monotonic() - started < SECONDS:
        for method, path, body, status in REQUESTS[name]:
            assert send(method, path, body) == status
            count += 1
    (MEET / f"span.{name}").write_text(f"{started} {time.monotonic()} {count}")
    return count
