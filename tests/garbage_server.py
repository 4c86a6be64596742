#!/usr/bin/env python3
"""garbage_server.py: a real HTTP server that sits in front of a real `dualkd serve`
and spoils its answers, for tests/test_student_pull.c.

usage: garbage_server.py UPSTREAM MODE
Metadata is passed through (the catalogue spoiled in mode 'shape'); every array
request gets, by MODE:
  ctype      200 text/html
  truncated  200 with the first half of the .npy (an honest Content-Length of it)
  cut        Content-Length of the whole .npy, half of it, then the connection closes
  npyshape   the .npy with a header that claims another shape of the same size
  slow       half of the .npy, then silence for 30 s
  status503  503 problem+json
  shape      (the catalogue lists a response one voxel too long along z)
  fedglobal  (tests/test_server_fed_site.c) the federation's global student: 200 application/zip
             whose body is not a zip archive, with a good Dualkd-Round; POSTs pass through
Prints "listening on http://127.0.0.1:PORT" to stderr once it accepts connections."""
import http.server
import json
import sys
import time
import urllib.error
import urllib.request

UPSTREAM, MODE = sys.argv[1], sys.argv[2]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def upstream(self):
        req = urllib.request.Request(UPSTREAM + self.path,
                                     headers={"Authorization": self.headers.get("Authorization", "")})
        try:
            with urllib.request.urlopen(req) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def do_POST(self):
        data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        req = urllib.request.Request(UPSTREAM + self.path, data=data, method="POST",
                                     headers={"Authorization": self.headers.get("Authorization", ""),
                                              "Content-Type": self.headers.get("Content-Type",
                                                                               "application/octet-stream")})
        try:
            with urllib.request.urlopen(req) as r:
                status, headers, body = r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            status, headers, body = e.code, e.headers, e.read()
        return self.answer(status, headers.get("Content-Type"), body)

    def answer(self, status, ctype, body, etag=None, length=None, extra=()):
        self.send_response(status)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        if etag:
            self.send_header("ETag", etag)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def do_GET(self):
        status, headers, body = self.upstream()
        if MODE == "fedglobal" and "/global" in self.path and status == 200:
            return self.answer(200, "application/zip", b"PK\x03\x04 this is no zip archive",
                               headers.get("ETag"), extra=[("Dualkd-Round",
                                                            headers.get("Dualkd-Round"))])
        if MODE == "shape" and self.path.startswith("/v1/targets?") and status == 200:
            page = json.loads(body)
            for a in page["samples"][0]["arrays"]:
                if a["kind"] == "response":
                    a["shape"][1] += 1
            return self.answer(200, "application/json", json.dumps(page).encode())
        if not self.path.startswith("/v1/targets/") or status != 200:
            return self.answer(status, headers.get("Content-Type"), body)
        etag, half = headers.get("ETag"), body[: len(body) // 2]
        if MODE == "ctype":
            return self.answer(200, "text/html", b"<html>maintenance</html>", etag)
        if MODE == "truncated":
            return self.answer(200, "application/x-npy", half, etag)
        if MODE == "cut":
            self.close_connection = True
            return self.answer(200, "application/x-npy", half, etag, length=len(body))
        if MODE == "npyshape":  # shape (a, b, ...) -> (1, a, b, ...): rank + 1, same size
            head_len = int.from_bytes(body[8:10], "little")
            head = body[10:10 + head_len].replace(b"'shape': (", b"'shape': (1, ", 1)
            head = head.replace(b"   \n", b"\n", 1)  # keep the length: 3 spaces of padding out
            return self.answer(200, "application/x-npy", body[:10] + head + body[10 + head_len:], etag)
        if MODE == "slow":
            self.send_response(200)
            self.send_header("Content-Type", "application/x-npy")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", etag)
            self.end_headers()
            self.wfile.write(half)
            self.wfile.flush()
            time.sleep(30)
            self.close_connection = True
            return None
        if MODE == "status503":
            return self.answer(503, "application/problem+json",
                               b'{"status": 503, "detail": "overloaded, try later"}')
        return self.answer(status, headers.get("Content-Type"), body, etag)


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print("listening on http://127.0.0.1:%d" % server.server_address[1], file=sys.stderr, flush=True)
server.serve_forever()
