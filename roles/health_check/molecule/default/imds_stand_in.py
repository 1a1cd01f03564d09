#!/usr/bin/env python3
"""A stand-in for EC2's instance metadata service on the node's own loopback (tests never reach 169.254.169.254).

IMDSv2 as EC2 answers it: PUT /latest/api/token (with a TTL header) gives a token; GET
/latest/meta-data/spot/instance-action with that token gives the interruption notice; no token or a wrong one: 401.
Usage: imds_stand_in.py PORT [--no-notice]   (--no-notice: 404, as EC2 answers while no interruption is planned)
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

TOKEN = "molecule-imds-token"
NOTICE = {"action": "terminate", "time": "2026-12-06T10:02:00Z"}


class Handler(BaseHTTPRequestHandler):
    def do_PUT(self):  # noqa: N802 - http.server's name
        if self.path != "/latest/api/token" or "X-aws-ec2-metadata-token-ttl-seconds" not in self.headers:
            self.send_error(400)
            return
        self._answer(200, TOKEN.encode())

    def do_GET(self):  # noqa: N802
        if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
            self.send_error(401)
        elif self.path == "/latest/meta-data/spot/instance-action" and "--no-notice" not in sys.argv:
            self._answer(200, json.dumps(NOTICE).encode())
        else:
            self.send_error(404)

    def _answer(self, code, body):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
