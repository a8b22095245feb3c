"""A scriptable OpenAI-compatible server on 127.0.0.1, in this process (a thread).

For errors the fault server does not make: a refusal of one schema, a one-off 400.

``answer(payload) -> (status, content)``: a status other than 200 sends an OpenAI-style
error body with ``content`` as its message; 200 sends ``content`` as the assistant's
message. Every request payload is kept in ``seen``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = Callable[[dict[str, Any]], tuple[int, str]]


def schema_name(payload: dict[str, Any]) -> str | None:
    """Return the ``json_schema.name`` a request asks for (None: free text)."""
    shape = payload.get("response_format") or {}
    return (shape.get("json_schema") or {}).get("name")


@contextmanager
def loopback(answer: Answer) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Serve ``answer`` for the block; yield the base URL and the requests seen."""
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(payload)
            status, content = answer(payload)
            body: dict[str, Any]
            if status != 200:
                body = {"error": {"message": content, "type": "invalid_request_error"}}
            else:
                body = {
                    "id": "x",
                    "object": "chat.completion",
                    "created": 0,
                    "model": payload.get("model", "m"),
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": content},
                        }
                    ],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
                }
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    finally:
        server.shutdown()
        server.server_close()
