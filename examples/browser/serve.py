"""Start the bookshelf on Werkzeug's threaded dev server: serve.py --host HOST --port PORT."""

import argparse

from shelf import create_app

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=5000)
args = parser.parse_args()
create_app().run(host=args.host, port=args.port, threaded=True, use_reloader=False)
