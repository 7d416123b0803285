"""Real HTTP servers on 127.0.0.1 for tests: the peers our code talks to, not mocks."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
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
    """Records JSON POSTs and answers like the chat tool it stands for.

    `received` holds every body, `accepted` those that passed `validate` (a function
    returning an error text, None when the body is fine) and got a 2xx; a refused body
    gets HTTP 400 with the error text, as Slack and Teams answer. `status` is the answer
    to valid bodies, or a list consumed one per request (the last one repeats).
    """

    def __init__(self, status: int | list[int] = 200, path: str = "/hook",
                 validate: Callable[[Any], str | None] | None = None) -> None:
        self.statuses = list(status) if isinstance(status, list) else [status]
        self.validate = validate
        self.received: list[Any] = []
        self.accepted: list[Any] = []
        self.refused: list[str] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                code, answer = outer._answer(self.path, raw)
                self.send_response(code)
                self.send_header("content-type", "text/plain")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(Handler, path)

    def _answer(self, path: str, raw: bytes) -> tuple[int, bytes]:
        with self._lock:
            self.paths.append(path)
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = None
            self.received.append(body)
            error = "invalid_payload" if body is None else None
            if error is None and self.validate is not None:
                error = self.validate(body)
            if error:
                self.refused.append(error)
                return 400, error.encode()
            status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
            if status < 300:
                self.accepted.append(body)
            return status, (b"ok" if status < 300 else b"server error")
