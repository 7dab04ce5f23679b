"""A fake OpenAI-compatible /v1/chat/completions endpoint on localhost, for the LLM judge and
labeller tests."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


class ChatServer:
    """Serves /v1/chat/completions on localhost (404 on any other path). `script` lists responses
    to give first, each an HTTP status (429 comes with Retry-After: 0) or a step name that
    `respond(step, body)` turns into the assistant's content, or None for a non-JSON body;
    once the script runs out every step is "ok". `requests` and `headers` record what came in."""

    def __init__(self, respond: Callable[[str, dict], str | None]):
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.script: list = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests.append(body)
                    outer.headers.append(dict(self.headers))
                    step = outer.script.pop(0) if outer.script else "ok"
                if self.path != "/v1/chat/completions":
                    step = 404
                if isinstance(step, int):
                    payload = json.dumps({"error": {"message": f"injected {step}"}}).encode()
                    self.send_response(step)
                    if step == 429:
                        self.send_header("Retry-After", "0")
                else:
                    content = respond(step, body)
                    payload = (b"<html>oops" if content is None else json.dumps(
                        {"choices": [{"message": {"role": "assistant", "content": content}}]}).encode())
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Sleeps:
    """A recording stand-in for time.sleep; `hook` runs after each call."""

    def __init__(self, hook=None):
        self.calls: list[float] = []
        self.hook = hook

    def __call__(self, s: float) -> None:
        self.calls.append(s)
        if self.hook is not None:
            self.hook()


def assert_exponential_backoff(calls: list[float], n: int) -> None:
    """n waits, retry k waiting between 2**(k-1)/2 and 2**(k-1) seconds (equal jitter, back-off
    base 1 s); a 429's Retry-After of 0 is below the back-off and changes nothing."""
    assert len(calls) == n
    for k, s in enumerate(calls, start=1):
        assert 2 ** (k - 1) / 2 <= s <= 2 ** (k - 1)
