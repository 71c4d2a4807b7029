"""Command line entry point: ``python -m sample_api.server --host H --port P``.

This is what the rcfile's ``[servercov] command`` starts. The reloader stays off
because it would fork a second, unmeasured process; threads keep the server
responsive while one request is slow.
"""

from __future__ import annotations

import argparse

from sample_api.app import create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sample_api.server", description="Run the sample API on Werkzeug's server."
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=5001, help="bind port (default: %(default)s)")
    args = parser.parse_args(argv)
    app = create_app()
    app.run(host=args.host, port=args.port, threaded=True, use_reloader=False, debug=False)


if __name__ == "__main__":
    main()
