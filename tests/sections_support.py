"""The exact comparison for the ``sections`` scenario: its requests replayed in one process.

The scenario's API calls a second service (measured, a section) and Redis
(``measured = false``).  The replay runs the second service in a thread of
the same process, under the same coverage, with a real redis-server of its
own, so that the lines both packages run can be compared with a live run's.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.support import (
    RUN_TIMEOUT,
    assert_no_leftovers,
    lines_differ,
    measured_lines,
    python_env,
    stray_data_files,
)

REPLAY = """
import json, os, subprocess, sys, threading
import coverage
cov = coverage.Coverage(data_file=sys.argv[1], source=["webapp", "inventory"], branch=True,
                        config_file=False)
cov.start()
from werkzeug.serving import make_server
import requests
from inventory import application
inventory = make_server("127.0.0.1", 0, application, threaded=False)
os.environ["INVENTORY_URL"] = f"http://127.0.0.1:{inventory.server_port}"
os.environ["REDIS_URL"] = f"redis://127.0.0.1:{sys.argv[2]}/0"
threading.Thread(target=inventory.serve_forever, daemon=True).start()
from webapp import create_app
client = create_app().test_client()
for method, path, body, status in json.loads(sys.argv[3]):
    assert client.open(path, method=method, json=body).status_code == status, path
for path in json.loads(sys.argv[4]):
    requests.get(os.environ["INVENTORY_URL"] + path, timeout=10)
inventory.shutdown()
cov.stop()
cov.save()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def redis_server(folder: Path) -> Iterator[int]:
    """Run a real redis-server on a free port for the replay; end it after."""
    port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no"], cwd=folder,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert redis.poll() is None and time.monotonic() < deadline, "no redis"
                time.sleep(0.02)
        yield port
    finally:
        redis.terminate()
        redis.wait(30)


def replay(project: Path, requests: Sequence[Sequence[object]],
           inventory_paths: Sequence[str] = ("/missing",)) -> dict[str, set[int]]:
    """Replay the API's requests and the inventory's direct ones in one process."""
    truth = project / ".truth"
    with redis_server(project) as port:
        subprocess.run([sys.executable, "-c", REPLAY, str(truth), str(port),
                        json.dumps(list(requests)), json.dumps(list(inventory_paths))],
                       cwd=project, env=python_env(), check=True, timeout=RUN_TIMEOUT)
    return measured_lines(truth, project)


def assert_exact(project: Path, requests: Sequence[Sequence[object]],
                 inventory_paths: Sequence[str] = ("/missing",)) -> None:
    measured = measured_lines(project / ".coverage", project)
    truth = replay(project, requests, inventory_paths)
    assert {"webapp/__init__.py", "inventory/__init__.py"} <= set(truth)
    assert lines_differ(measured, truth) == []


def assert_clean(project: Path) -> None:
    assert stray_data_files(project) == []
    assert_no_leftovers(project)  # redis-server too: its cwd is the project


