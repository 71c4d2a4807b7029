"""Replay requests in-process through Starlette's TestClient under coverage (ground truth).

    python replay.py DATA_FILE SOURCE REQUESTS_JSON

The lifespan runs as under a server: startup before the first request,
shutdown after the last.
"""

import json
import sys

import coverage

cov = coverage.Coverage(data_file=sys.argv[1], source=[sys.argv[2]], branch=True)
cov.start()
from fastapi.testclient import TestClient  # noqa: E402
from webapp import create_app  # noqa: E402

with TestClient(create_app(), raise_server_exceptions=False) as client:
    for method, path, body, status in json.loads(sys.argv[3]):
        answer = client.request(method, path, json=body)
        assert answer.status_code == status, (method, path, answer.status_code)
cov.stop()
cov.save()
