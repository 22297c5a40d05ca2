# -*- coding: utf-8 -*-
"""A flask-like HTTP function with nothing but the standard library.

Routes:
  GET  /hello?name=...   a greeting with the query string and some X-CFF-* headers
  POST /echo             the request body back, with its content type
  GET  /healthz          "ok"
  POST /invoke           what fnbox sends for an event that is not API Gateway-shaped
anything else            404
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

ROUTES = {}


def route(method, path):
    def register(fn):
        ROUTES[(method, path)] = fn
        return fn
    return register


@route("GET", "/hello")
def hello(req, query, body):
    name = query.get("name", ["world"])[0]
    return 200, "application/json", json.dumps({
        "message": "Hello, %s!" % name,
        "query": query,
        "requestId": req.headers.get("X-CFF-Request-Id"),
        "function": req.headers.get("X-CFF-Func-Name"),
        "memory": req.headers.get("X-CFF-Memory"),
    })


@route("POST", "/echo")
def echo(req, query, body):
    return 200, req.headers.get("Content-Type", "application/octet-stream"), body


@route("GET", "/healthz")
def healthz(req, query, body):
    return 200, "text/plain; charset=utf-8", "ok"


@route("POST", "/invoke")
def invoke(req, query, body):
    return 200, "application/json", json.dumps({"event": body.decode("utf-8", "replace")})


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def handle_any(self):
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fn = ROUTES.get((self.command, url.path))
        if fn is None:
            status, ctype, out = 404, "application/json", json.dumps(
                {"error": "no route for %s %s" % (self.command, url.path)})
        else:
            status, ctype, out = fn(self, parse_qs(url.query), body)
        out = out.encode("utf-8") if isinstance(out, str) else out
        print("[Function] http-flask-like: %s %s -> %d (request %s)"
              % (self.command, url.path, status, self.headers.get("X-CFF-Request-Id")))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any

    def log_message(self, fmt, *args):
        pass  # one [Function] line per request is enough


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", 8000), Handler)
    print("http-flask-like listening on 127.0.0.1:8000", file=sys.stderr)
    server.serve_forever()
