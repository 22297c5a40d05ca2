"""A FunctionGraph telemetry extension in plain Python (standard library only), written from
the FunctionGraph extension and telemetry documents alone:

1. serve POST /extension/invoke on 127.0.0.1:8081 and the telemetry listener on 127.0.0.1:8082
   (both started before registering, so nothing the platform sends can be missed);
2. POST http://$EXTENSION_API_ADDR/extension/register with FunctionGraph-Extension-Name (this
   launcher's file name) and FunctionGraph-Extension-Address;
3. POST http://$EXTENSION_API_ADDR/telemetry with the document's example body, byte for byte,
   trailing comma included;
4. append every event received (and one {"name":"extension.invoke",...} per invocation push) as
   one JSON line to $FNBOX_TELEMETRY_OUT (default /tmp/fnbox-telemetry-py.jsonl);
5. on SIGTERM keep listening briefly for the platform's last batch, then exit 0.
"""

import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

INVOKE_PORT = 8081
TELEMETRY_PORT = 8082
# Exactly the document's example, including the trailing comma after "types".
SUBSCRIPTION = (
    '{"subscriber": {"protocol": "POST", "uri": "http://127.0.0.1:8082"}, '
    '"types": ["platform", "function", "extension"],}'
)
RECEIVED = "[Extension] received "

OUT = os.environ.get("FNBOX_TELEMETRY_OUT") or "/tmp/fnbox-telemetry-py.jsonl"
NAME = os.path.basename(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] else "extensionPy.sh"

write_lock = threading.Lock()
activity = {"in_flight": 0, "last": time.monotonic()}
activity_lock = threading.Lock()


def say(line):
    print(line, flush=True)


def append(events):
    """One line per event, flushed after each batch."""
    text = "".join(json.dumps(e, ensure_ascii=False, separators=(",", ":")) + "\n" for e in events)
    with write_lock, open(OUT, "a", encoding="utf-8") as f:
        f.write(text)
        f.flush()


def only_our_echoes(events):
    """A batch made only of our own "received" lines must not be answered with another one,
    or each echo would cause the next, forever."""
    return all(
        isinstance(e, dict) and e.get("name") == "extension" and RECEIVED in str(e.get("logs", ""))
        for e in events
    )


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body=b""):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_json(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            body = self.read_chunked()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        return json.loads(body or b"null")

    def read_chunked(self):
        """A chunked request body (http.server does not decode it)."""
        body = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline().strip():  # trailers, up to the empty line
                    pass
                return body
            body += self.rfile.read(size)
            self.rfile.readline()  # the CRLF after the chunk

    def do_POST(self):
        with activity_lock:
            activity["in_flight"] += 1
        try:
            self.handle_post()
        except (ValueError, OSError) as e:
            self.reply(400, json.dumps({"errorType": "InvalidRequest", "errorMessage": str(e)}).encode())
        finally:
            with activity_lock:
                activity["in_flight"] -= 1
                activity["last"] = time.monotonic()


class InvokeHandler(Handler):
    def handle_post(self):
        if self.path != "/extension/invoke":
            return self.reply(404)
        push = self.read_json()
        append([{
            "name": "extension.invoke",
            "traceId": push.get("traceId"),
            "invokedFunctionUrn": push.get("invokedFunctionUrn"),
        }])
        self.reply(200)


class TelemetryHandler(Handler):
    def handle_post(self):
        events = self.read_json()
        if isinstance(events, dict):
            events = [events]
        if not isinstance(events, list):
            raise ValueError("the telemetry body must be a JSON array of events")
        append(events)
        if events and not only_our_echoes(events):
            say(f"{RECEIVED}{len(events)} events")
        self.reply(200)


def call(path, body, headers):
    """POST to the extension API; returns (status, body text)."""
    url = f"http://{os.environ['EXTENSION_API_ADDR']}{path}"
    req = urllib.request.Request(url, data=body.encode(), method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def error_message(text):
    try:
        body = json.loads(text)
        info = body.get("errorInfo") or body
        return f"{info.get('errorType', '')}: {info.get('errorMessage', '')}"
    except (ValueError, AttributeError):
        return text.strip()


def main():
    if not os.environ.get("EXTENSION_API_ADDR"):
        say("[Extension] error: EXTENSION_API_ADDR is not set")
        return 1
    try:
        servers = [
            ThreadingHTTPServer(("127.0.0.1", INVOKE_PORT), InvokeHandler),
            ThreadingHTTPServer(("127.0.0.1", TELEMETRY_PORT), TelemetryHandler),
        ]
    except OSError as e:
        say(f"[Extension] error: cannot listen on 127.0.0.1:{INVOKE_PORT}/{TELEMETRY_PORT}: {e}")
        return 1
    for s in servers:
        s.daemon_threads = True
        threading.Thread(target=s.serve_forever, daemon=True).start()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    try:
        status, text = call("/extension/register", "{}", {
            "FunctionGraph-Extension-Name": NAME,
            "FunctionGraph-Extension-Address": f"127.0.0.1:{INVOKE_PORT}",
            "Content-Type": "application/json",
        })
        if status != 200:
            say(f"[Extension] error: registration refused (HTTP {status}): {error_message(text)}")
            return 1
        status, text = call("/telemetry", SUBSCRIPTION, {"Content-Type": "application/json"})
        if status != 200:
            say(f"[Extension] error: subscription refused (HTTP {status}): {error_message(text)}")
            return 1
    except OSError as e:
        say(f"[Extension] error: extension API unreachable: {e}")
        return 1
    say(f"[Extension] registered as {NAME}")

    while not stop.wait(0.1):
        pass
    # No shutdown event exists: the platform sends SIGTERM, then flushes the last telemetry
    # within its kill grace. Listen until quiet for 0.25 s (at most 1.2 s), then stop.
    started = time.monotonic()
    while time.monotonic() - started < 1.2:
        with activity_lock:
            quiet = time.monotonic() - max(activity["last"], started)
            if activity["in_flight"] == 0 and quiet >= 0.25:
                break
        time.sleep(0.02)
    for s in servers:
        s.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
