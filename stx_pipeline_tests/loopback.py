"""Real HTTP servers on 127.0.0.1 for tests: the peers our code talks to, not mocks."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class LoopbackServer:
    """Serves `handler` on a free loopback port in a daemon thread while in a `with`."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], path: str = "",
                 poll_interval: float = 0.5) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        args=(poll_interval,), daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class WebhookReceiver(LoopbackServer):
    """Records JSON POSTs (`received` bodies, `paths`) and answers `status`."""

    def __init__(self, status: int = 200, path: str = "/hook") -> None:
        self.status = status
        self.received: list[dict[str, Any]] = []
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                outer.paths.append(self.path)
                outer.received.append(json.loads(self.rfile.read(length)))
                self.send_response(outer.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(Handler, path)
