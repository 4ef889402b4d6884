"""A webhook receiver for the compose setup that really verifies driftgate's signatures.

It accepts POSTs whose X-Driftgate-Signature is "v1=" + hex HMAC-SHA256 of
"{X-Driftgate-Timestamp}.{body}" keyed by DRIFTGATE_WEBHOOK_SECRET, with a timestamp within
TOLERANCE_S seconds of now (replays are refused), and logs each alert as one JSON line.
Anything else gets 401 and is logged as refused. Standard library only.

    DRIFTGATE_WEBHOOK_SECRET=change-me PORT=8080 python3 webhook_receiver.py
"""

import hashlib
import hmac
import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = os.environ["DRIFTGATE_WEBHOOK_SECRET"].encode()
PORT = int(os.environ.get("PORT", "8080"))
TOLERANCE_S = int(os.environ.get("TOLERANCE_S", "300"))


def verified(headers, body: bytes) -> str:
    """Empty when the request is authentic; otherwise why not."""
    timestamp = headers.get("X-Driftgate-Timestamp", "")
    signature = headers.get("X-Driftgate-Signature", "")
    if not timestamp.isdigit():
        return "no timestamp"
    if abs(time.time() - int(timestamp)) > TOLERANCE_S:
        return "timestamp outside the tolerance (a replay?)"
    mac = hmac.new(SECRET, timestamp.encode() + b"." + body, hashlib.sha256)
    if not hmac.compare_digest("v1=" + mac.hexdigest(), signature):
        return "bad signature"
    return ""


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        problem = verified(self.headers, body)
        status = 401 if problem else 200
        self.send_response(status)
        self.end_headers()
        record = {"status": status, "alert_id": self.headers.get("X-Driftgate-Alert-Id")}
        if problem:
            record["refused"] = problem
        else:
            record["alert"] = json.loads(body or b"null")
        print(json.dumps(record), flush=True)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    print(json.dumps({"listening": PORT}), flush=True)
    server.serve_forever()
