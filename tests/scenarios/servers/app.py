"""The servers' entry point, outside the measured source (webapp/).

WSGI servers load ``app:app`` (gunicorn, waitress-serve, uWSGI's ``module``);
``{python} app.py PORT`` runs it on Werkzeug's threaded dev server.
"""

import sys

from webapp import create_app

app = create_app()

if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True, use_reloader=False)
