"""A deliberately broken FunctionGraph telemetry extension, for `fnbox test-extension`.

It registers and subscribes like examples/telemetry-python, then misbehaves in one way, chosen
by its first argument:

  no-push-answer   reads each POST /extension/invoke and never answers it
  batch-500        answers every telemetry batch with HTTP 500
  ignore-sigterm   ignores SIGTERM (so the platform has to SIGKILL it)

Standard library only. Listens on 127.0.0.1:8081 (pushes) and 127.0.0.1:8082 (telemetry).
"""

import json
import os
import signal
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE = sys.argv[1] if len(sys.argv) > 1 else ""
NAME = os.path.basename(sys.argv[2]) if len(sys.argv) > 2 else "extensionBroken.sh"
MODES = ("no-push-answer", "batch-500", "ignore-sigterm")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/extension/invoke" and MODE == "no-push-answer":
            # Hold the connection open and never answer.
            threading.Event().wait()
        status = 500 if (self.path != "/extension/invoke" and MODE == "batch-500") else 200
        if status == 200 and self.path != "/extension/invoke":
            json.loads(body or b"[]")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


def call(path, body, headers):
    req = urllib.request.Request(
        f"http://{os.environ['EXTENSION_API_ADDR']}{path}",
        data=body.encode(),
        method="POST",
        headers=headers,
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status


def main():
    if MODE not in MODES:
        print(f"[Extension] error: mode must be one of {', '.join(MODES)}, got {MODE!r}", flush=True)
        return 2
    for port in (8081, 8082):
        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
    stop = threading.Event()
    if MODE == "ignore-sigterm":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    call("/extension/register", "{}", {
        "FunctionGraph-Extension-Name": NAME,
        "FunctionGraph-Extension-Address": "127.0.0.1:8081",
    })
    call("/telemetry", json.dumps({
        "subscriber": {"protocol": "POST", "uri": "http://127.0.0.1:8082"},
        "types": ["platform", "function", "extension"],
    }), {"Content-Type": "application/json"})
    print(f"[Extension] {NAME} registered, broken on purpose: {MODE}", flush=True)
    while not stop.wait(0.1):
        pass
    time.sleep(0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
