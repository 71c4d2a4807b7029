"""Serve the API on 127.0.0.1, threaded: ``python serve.py PORT``."""

import sys

from shop.api import create_app

create_app().run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True)
