#!/usr/bin/env python3
"""A small OTLP/HTTP trace receiver (JSON encoding) for the tests and `make demo`.

POST /v1/traces with an ExportTraceServiceRequest as JSON; every span is appended to --out as
one JSON line: traceId, spanId, parentSpanId (hex), name, kind, start/end (ns since epoch),
service, attributes, status. Ids are read as hex (the OTLP JSON rule) or base64 (protobuf's
generic JSON mapping, which some exporters send). It binds 127.0.0.1 only and fails loudly when
the port is taken. Standard library only.
"""
import argparse
import base64
import binascii
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 16 * 1024 * 1024


def ident(value, size):
    """An OTLP id (size bytes) as lowercase hex; '' when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return ""
    if len(value) == 2 * size:
        try:
            bytes.fromhex(value)
            return value.lower()
        except ValueError:
            pass
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return ""
    return raw.hex() if len(raw) == size else ""


def any_value(v):
    if not isinstance(v, dict):
        return None
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in v:
            return v[key]
    if "intValue" in v:
        try:
            return int(v["intValue"])
        except (TypeError, ValueError):
            return None
    return None


def attributes(items):
    out = {}
    for item in items or []:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            out[item["key"]] = any_value(item.get("value"))
    return out


def spans(request):
    for rs in request.get("resourceSpans") or []:
        service = attributes((rs.get("resource") or {}).get("attributes")).get("service.name", "")
        for ss in rs.get("scopeSpans") or []:
            for span in ss.get("spans") or []:
                status = span.get("status") or {}
                yield {
                    "traceId": ident(span.get("traceId"), 16),
                    "spanId": ident(span.get("spanId"), 8),
                    "parentSpanId": ident(span.get("parentSpanId"), 8),
                    "name": span.get("name", ""),
                    "kind": span.get("kind", 0),
                    "start": int(span.get("startTimeUnixNano", 0) or 0),
                    "end": int(span.get("endTimeUnixNano", 0) or 0),
                    "service": service,
                    "attributes": attributes(span.get("attributes")),
                    "status": {"code": status.get("code", 0), "message": status.get("message", "")},
                }


class Handler(BaseHTTPRequestHandler):
    timeout = 10  # a client that sends less than it announced is dropped, not waited for

    def do_POST(self):
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if self.path != "/v1/traces" or not 0 < length <= MAX_BODY:
            self.send_error(404 if self.path != "/v1/traces" else 413)
            return
        body = self.rfile.read(length)
        if "json" not in (self.headers.get("Content-Type") or ""):
            self.send_error(415, "JSON only: set OTEL_EXPORTER_OTLP_PROTOCOL=http/json")
            return
        try:
            lines = [json.dumps(s) for s in spans(json.loads(body))]
        except Exception as error:  # any shape of body, nesting included: a 400, never a dead thread
            self.send_error(400, f"not an OTLP trace request: {error}")
            return
        with open(self.server.out, "a", encoding="utf-8") as out:
            out.write("".join(line + "\n" for line in lines))
        reply = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True, help="file the spans are appended to, one JSON object per line")
    args = parser.parse_args()
    try:
        server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    except OSError as error:
        sys.exit(f"otlp-receiver: cannot listen on 127.0.0.1:{args.port}: {error}")
    server.out = args.out
    open(args.out, "a").close()
    print(f"otlp-receiver: listening on 127.0.0.1:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
