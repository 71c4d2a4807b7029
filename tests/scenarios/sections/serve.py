"""Start the API on Werkzeug's threaded dev server: serve.py PORT."""

import sys

from webapp import create_app

create_app().run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True, use_reloader=False)
