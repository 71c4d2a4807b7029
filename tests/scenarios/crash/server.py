"""A tiny server for the crash race: python -S server.py PORT (standard library only).

GET /health/ answers 200; GET /crash/ ends the process at once with code 7,
as a crash would (the client sees the connection drop); POST /shutdown/
answers 202, then the server stops and exits 0.
"""

import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status):
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.wfile.flush()

    def do_GET(self):
        if self.path == "/crash/":
            os._exit(7)
        self.answer(200 if self.path == "/health/" else 404)

    def do_POST(self):
        if self.path != "/shutdown/":
            self.answer(404)
            return
        self.answer(202)
        threading.Thread(target=server.shutdown).start()


server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
server.serve_forever(poll_interval=0.01)
