"""A real web server on 127.0.0.1 serving a folder, optionally behind an HTTP Basic login, for
the tests of URL inputs (process, batch)."""
from __future__ import annotations

import base64
import functools
import http.server
import threading
from pathlib import Path


class _Quiet(http.server.SimpleHTTPRequestHandler):
    """Serves a folder (no Range support, like `python3 -m http.server`) and logs nothing; with
    `password` set, only to the user "coach" with that password (HTTP Basic), as a web server
    behind a login would."""

    password: str | None = None

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        expected = None if self.password is None else \
            "Basic " + base64.b64encode(f"coach:{self.password}".encode()).decode()
        if expected is not None and self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="clips"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # a client that closes early (a probe, a stopped run) is not an error here


def serve_folder(folder: Path, password: str | None = None) -> tuple[http.server.ThreadingHTTPServer, threading.Thread]:
    """Serves `folder` (with `password`: to the user "coach" only) until the caller shuts the server
    down and joins its thread."""
    handler = type("Handler", (_Quiet,), {"password": password})
    server = _QuietServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread
