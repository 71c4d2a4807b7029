"""Replay a request log through Flask's test client under coverage: replay.py LOG DATA_FILE.

The server appended every request it received to LOG (``SHELF_REQUEST_LOG``);
this sends the same requests, in the same order, with the same headers
(cookies included) and bodies, to a fresh app in this process, and saves what
they ran to DATA_FILE.  That is the ground truth a measured run must equal.
Each request runs under the coverage context its ``X-Servercov-Context``
header names (the one before it, if it has none), as ``contexts = test`` records
it on the server.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import tempfile

import coverage

HERE = os.path.dirname(os.path.abspath(__file__))
CONTEXT_HEADER = "x-servercov-context"


def replay(log_path: str, data_file: str) -> int:
    """Replay ``log_path`` under coverage into ``data_file``; return how many requests ran."""
    with open(log_path) as log:
        entries = [json.loads(line) for line in log if line.strip()]
    cov = coverage.Coverage(data_file=data_file, source=[os.path.join(HERE, "shelf")],
                            branch=True, config_file=False)
    with tempfile.TemporaryDirectory() as scratch:
        # The app logs again, into a scratch file: the same lines run as in the server.
        os.environ["SHELF_REQUEST_LOG"] = os.path.join(scratch, "replayed.jsonl")
        os.environ.pop("SERVERCOV_TOKEN", None)
        sys.path.insert(0, HERE)
        cov.start()
        from shelf import create_app

        client = create_app().test_client(use_cookies=False)
        context = ""
        for entry in entries:
            label = dict((k.lower(), v) for k, v in entry["headers"]).get(CONTEXT_HEADER, "")
            if label and label != context:
                cov.switch_context(label)
                context = label
            client.open(entry["path"], method=entry["method"], query_string=entry["query"],
                        headers=entry["headers"], data=base64.b64decode(entry["body"]))
        cov.stop()
    cov.save()
    return len(entries)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.splitlines()[0])
    count = replay(sys.argv[1], sys.argv[2])
    print(f"replayed {count} requests into {sys.argv[2]}")
