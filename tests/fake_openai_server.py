"""A stand-in OpenAI-compatible streaming server for the server-step tests, standard library only.

    python tests/fake_openai_server.py --port P [--tokens-per-s 200] [--die-after N] [--ready-after S]
                                       [--exit-at-start] [--model NAME] [--token-env VAR]

GET /v1/models answers 200 once ``--ready-after`` seconds have passed (before: 503). POST /v1/completions
streams one SSE chunk per requested token (text " t<i>"), then a usage chunk and [DONE]. ``--die-after N``:
the process exits (os._exit) in the middle of the N-th completion's stream, as a crashed server does.
``--exit-at-start``: exit with code 3 at once (a server that cannot start). ``--model``: the model id it serves
(default llmbench). ``--token-env VAR``: every request must carry ``Authorization: Bearer <$VAR>`` (else 401),
as a hosted endpoint does; the value is read from the environment, never from the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tokens-per-s", type=float, default=200.0)
    ap.add_argument("--die-after", type=int, default=0)
    ap.add_argument("--ready-after", type=float, default=0.0)
    ap.add_argument("--exit-at-start", action="store_true")
    ap.add_argument("--model", default="llmbench")
    ap.add_argument("--token-env")
    a = ap.parse_args()
    token = os.environ[a.token_env] if a.token_env else None
    if a.exit_at_start:
        print("fake server: cannot start (asked to exit)", flush=True)
        sys.exit(3)
    started, count, lock = time.monotonic(), [0], threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            print("fake server:", fmt % args, flush=True)

        def _refused(self) -> bool:
            if token is None or self.headers.get("Authorization") == f"Bearer {token}":
                return False
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return True

        def do_GET(self):
            if self._refused():
                return
            ready = time.monotonic() - started >= a.ready_after
            body = json.dumps({"data": [{"id": a.model}]}).encode() if ready else b"loading"
            self.send_response(200 if ready and self.path == "/v1/models" else 503 if not ready else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self._refused():
                return
            with lock:
                count[0] += 1
                n_req = count[0]
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            n = int(req["max_tokens"])
            for i in range(n):
                if a.die_after and n_req >= a.die_after and i == n // 2:
                    print(f"fake server: dying in request {n_req}", flush=True)
                    os._exit(9)
                time.sleep(1.0 / a.tokens_per_s)
                self._event({"choices": [{"index": 0, "text": f" t{i}", "finish_reason": None}],
                             "usage": {"prompt_tokens": 5, "completion_tokens": i + 1, "total_tokens": 6 + i}})
            self._event({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": n, "total_tokens": 5 + n}})
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

        def _event(self, obj):
            self.wfile.write(b"data: " + json.dumps(obj).encode() + b"\n\n")
            self.wfile.flush()

    ThreadingHTTPServer(("127.0.0.1", a.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
