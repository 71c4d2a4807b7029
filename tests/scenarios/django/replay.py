"""Replay requests in-process through django.test.Client under coverage (ground truth).

    python replay.py DATA_FILE SOURCE REQUESTS_JSON
"""

import json
import os
import sys

import coverage

cov = coverage.Coverage(data_file=sys.argv[1], source=[sys.argv[2]], branch=True)
cov.start()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
import django  # noqa: E402

django.setup()
from django.test import Client  # noqa: E402

client = Client(raise_request_exception=False)
for method, path, body, status in json.loads(sys.argv[3]):
    data = json.dumps(body) if body is not None else ""
    answer = client.generic(method, path, data, content_type="application/json")
    assert answer.status_code == status, (method, path, answer.status_code)
cov.stop()
cov.save()
