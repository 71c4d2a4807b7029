"""Start the second service, a bare WSGI app, on Werkzeug: serve_inventory.py PORT."""

import sys

from inventory import application
from werkzeug.serving import run_simple

run_simple("127.0.0.1", int(sys.argv[1]), application, threaded=True)
