#!/usr/bin/env python3
"""A fake Agones SDK sidecar: the REST gateway of Agones' local SDK server.

Agones (agones.dev) runs a sidecar next to every game server; the game talks
to it on 127.0.0.1:$AGONES_SDK_HTTP_PORT. Neither Debian nor PyPI ship one
(docs/field-notes.md, part 2, B), so the tests run against this, modelled on
`pkg/sdkserver/localsdk.go` (the sidecar's `--local` mode) and the gateway of
`cmd/sdk-server/main.go`:

  GET  /gameserver                      the GameServer (proto names, int64 as strings)
  POST /ready /allocate /shutdown       state moves (Shutdown is final)
  POST /reserve {"seconds": N}          Reserved, back to Ready after N s (0: stays)
  POST /health {}                       an empty body is refused with 400, as the gateway does
  PUT  /metadata/label {"key","value"}  stored as agones.dev/sdk-<key>
  PUT  /metadata/annotation {"key","value"}
  GET  /watch/gameserver                a chunked stream of {"result": GameServer}, one line per
                                        change, the current one first
  GET|PATCH /v1beta1/counters/{name}    {"count","capacity"} or {"countDiff"}
  GET|PATCH /v1beta1/lists/{name}       {"capacity"}
  POST /v1beta1/lists/{name}:addValue   {"value"}: 409 if present, 400 when full
  POST /v1beta1/lists/{name}:removeValue {"value"}: 404 if absent

Stricter than localsdk in one way, on purpose: a label key or value the
Kubernetes API would refuse (what the real sidecar's update to the
GameServer fails on, silently, later) is answered 400 here.

Test hooks: --port 0 picks a free port, printed as `PORT n` and written to
--ready-file as JSON; --log FILE gets one JSON line per request (method,
path, body, status, state after it, time); --unhealthy-after S marks the
GameServer Unhealthy when no health ping came for S seconds once it is Ready
(Agones' failureThreshold x periodSeconds); --counter rooms=0/10 and
--list players=/100 declare the beta counters and lists (rooms and players
by default).
"""

import argparse
import copy
import json
import os
import re
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LABEL_PREFIX = "agones.dev/sdk-"
# Kubernetes: a qualified name (prefix/name) and a label value.
NAME_PART = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
# States a state move may not leave (localsdk: Shutdown is the end).
FINAL = {"Shutdown"}


class Sidecar:
    """The GameServer and everything that changes it, behind one lock."""

    def __init__(self, state, counters, lists, unhealthy_after, log_path):
        self.lock = threading.Condition()
        self.version = 0
        self.gs = {
            "object_meta": {
                "name": "local",
                "namespace": "default",
                "uid": "1234",
                "resource_version": "0",
                "generation": "1",
                "creation_timestamp": str(int(time.time())),
                "annotations": {"annotation": "true"},
                "labels": {"islocal": "true"},
            },
            "spec": {"health": {"disabled": False, "period_seconds": 5,
                                "failure_threshold": 3, "initial_delay_seconds": 5}},
            "status": {
                "state": state,
                "address": "127.0.0.1",
                "ports": [{"name": "default", "port": 7777}],
                "counters": {name: {"count": str(c), "capacity": str(cap)} for name, (c, cap) in counters.items()},
                "lists": {name: {"capacity": str(cap), "values": list(vals)} for name, (vals, cap) in lists.items()},
            },
        }
        self.health_count = 0
        self.last_health = None
        # When it last became Ready: the health deadline counts from there
        # until the first ping (Agones' initialDelaySeconds, shortened).
        self.ready_since = None
        self.unhealthy_after = unhealthy_after
        self.reserve_timer = None
        self.log_path = log_path
        self.log_lock = threading.Lock()
        if unhealthy_after > 0:
            threading.Thread(target=self._health_watch, daemon=True).start()

    # -- changes (caller holds the lock) --

    def _changed(self):
        self.version += 1
        meta = self.gs["object_meta"]
        meta["resource_version"] = str(self.version)
        self.lock.notify_all()

    def _move(self, state):
        status = self.gs["status"]
        if status["state"] in FINAL or status["state"] == state:
            return
        status["state"] = state
        self._changed()

    def state(self):
        with self.lock:
            return self.gs["status"]["state"]

    def snapshot(self):
        with self.lock:
            return copy.deepcopy(self.gs), self.version

    # -- the SDK's calls --

    def ready(self):
        with self.lock:
            self._cancel_reserve()
            if self.ready_since is None:
                self.ready_since = time.monotonic()
            self._move("Ready")

    def allocate(self):
        with self.lock:
            self._cancel_reserve()
            self._move("Allocated")

    def shutdown(self):
        with self.lock:
            self._cancel_reserve()
            self._move("Shutdown")

    def reserve(self, seconds):
        with self.lock:
            self._cancel_reserve()
            self._move("Reserved")
            if seconds > 0 and self.gs["status"]["state"] == "Reserved":
                timer = threading.Timer(seconds, self._reserve_over)
                timer.daemon = True
                self.reserve_timer = timer
                timer.start()

    def _cancel_reserve(self):
        if self.reserve_timer is not None:
            self.reserve_timer.cancel()
            self.reserve_timer = None

    def _reserve_over(self):
        with self.lock:
            self.reserve_timer = None
            if self.gs["status"]["state"] == "Reserved":
                self._move("Ready")

    def health(self):
        with self.lock:
            self.health_count += 1
            self.last_health = time.monotonic()

    def _health_watch(self):
        while True:
            time.sleep(min(0.1, self.unhealthy_after / 4))
            with self.lock:
                state = self.gs["status"]["state"]
                if state in ("Ready", "Allocated", "Reserved"):
                    last = self.last_health or self.ready_since
                    if last is None or time.monotonic() - last > self.unhealthy_after:
                        self._move("Unhealthy")

    def set_meta(self, kind, key, value):
        with self.lock:
            self.gs["object_meta"][kind][LABEL_PREFIX + key] = value
            self._changed()

    def counter(self, name):
        with self.lock:
            found = self.gs["status"]["counters"].get(name)
            return None if found is None else dict(found, name=name)

    def update_counter(self, name, body):
        with self.lock:
            found = self.gs["status"]["counters"].get(name)
            if found is None:
                return 404, f"counter not found: {name}"
            count, capacity = int(found["count"]), int(found["capacity"])
            if "capacity" in body:
                capacity = int(body["capacity"])
                if capacity < 0:
                    return 400, "capacity out of range"
            if "count" in body:
                count = int(body["count"])
            diff = body.get("countDiff", body.get("count_diff"))
            if diff is not None:
                count += int(diff)
            if count < 0 or count > capacity:
                return 400, f"count {count} out of range [0, {capacity}]"
            found["count"], found["capacity"] = str(count), str(capacity)
            self._changed()
            return 200, dict(found, name=name)

    def list_(self, name):
        with self.lock:
            found = self.gs["status"]["lists"].get(name)
            return None if found is None else dict(copy.deepcopy(found), name=name)

    def update_list(self, name, body):
        with self.lock:
            found = self.gs["status"]["lists"].get(name)
            if found is None:
                return 404, f"list not found: {name}"
            if "capacity" in body:
                capacity = int(body["capacity"])
                if capacity < 0 or capacity > 1000:
                    return 400, "capacity out of range [0, 1000]"
                found["capacity"] = str(capacity)
                del found["values"][capacity:]
            if "values" in body:
                values = list(dict.fromkeys(body["values"]))
                if len(values) > int(found["capacity"]):
                    return 400, "more values than capacity"
                found["values"] = values
            self._changed()
            return 200, dict(copy.deepcopy(found), name=name)

    def list_value(self, name, value, add):
        with self.lock:
            found = self.gs["status"]["lists"].get(name)
            if found is None:
                return 404, f"list not found: {name}"
            values = found["values"]
            if add:
                if value in values:
                    return 409, f"already exists: {value}"
                if len(values) >= int(found["capacity"]):
                    return 400, "list at capacity"
                values.append(value)
            else:
                if value not in values:
                    return 404, f"not found: {value}"
                values.remove(value)
            self._changed()
            return 200, dict(copy.deepcopy(found), name=name)

    def record(self, entry):
        if not self.log_path:
            return
        line = json.dumps(entry, sort_keys=True) + "\n"
        with self.log_lock:
            with open(self.log_path, "a", encoding="utf-8") as log:
                log.write(line)


def parse_pairs(items, kind):
    """`rooms=0/10` (counter: count/capacity), `players=a,b/100` (list)."""
    out = {}
    for item in items:
        name, _, rest = item.partition("=")
        first, _, capacity = rest.partition("/")
        if kind == "counter":
            out[name] = (int(first or 0), int(capacity or 1000))
        else:
            out[name] = ([v for v in first.split(",") if v], int(capacity or 1000))
    return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-agones/1"
    sidecar: Sidecar = None  # set in main

    def log_message(self, *args):  # quiet: the JSON log is the record
        pass

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _reply(self, status, payload, raw_body):
        data = (json.dumps(payload) if not isinstance(payload, str) else json.dumps({"error": payload})).encode()
        # Logged before the answer leaves: a client that sends its next
        # request once answered finds this one logged first (the log's
        # order is the order the requests were made in).
        self.sidecar.record({
            "time": time.time(), "method": self.command, "path": self.path,
            "body": raw_body.decode("utf-8", "replace"), "status": status,
            "state": self.sidecar.state(),
        })
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _json(self, raw):
        if not raw.strip():
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def do_GET(self):
        raw = self._body()
        sidecar = self.sidecar
        if self.path == "/gameserver":
            return self._reply(200, sidecar.snapshot()[0], raw)
        if self.path == "/watch/gameserver":
            return self._watch(raw)
        match = re.fullmatch(r"/v1beta1/(counters|lists)/([^/:]+)", self.path)
        if match:
            found = sidecar.counter(match[2]) if match[1] == "counters" else sidecar.list_(match[2])
            if found is None:
                return self._reply(404, f"{match[1][:-1]} not found: {match[2]}", raw)
            return self._reply(200, found, raw)
        return self._reply(404, f"no route for GET {self.path}", raw)

    def do_POST(self):
        raw = self._body()
        sidecar = self.sidecar
        body = self._json(raw)
        path = self.path
        if path == "/health":
            # cmd/sdk-server: the gateway reads a JSON body into Empty;
            # nothing at all does not parse.
            if body is None:
                return self._reply(400, "health needs a JSON body ({})", raw)
            sidecar.health()
            return self._reply(200, {}, raw)
        moves = {"/ready": sidecar.ready, "/allocate": sidecar.allocate, "/shutdown": sidecar.shutdown}
        if path in moves:
            moves[path]()
            return self._reply(200, {}, raw)
        if path == "/reserve":
            seconds = body.get("seconds", 0) if body else 0
            try:
                seconds = int(seconds)
            except (TypeError, ValueError):
                return self._reply(400, "seconds must be an integer", raw)
            sidecar.reserve(seconds)
            return self._reply(200, {}, raw)
        match = re.fullmatch(r"/v1beta1/lists/([^/:]+):(addValue|removeValue)", path)
        if match:
            if body is None or not isinstance(body.get("value"), str):
                return self._reply(400, "a value is needed", raw)
            status, result = sidecar.list_value(match[1], body["value"], match[2] == "addValue")
            return self._reply(status, result, raw)
        return self._reply(404, f"no route for POST {path}", raw)

    def do_PUT(self):
        raw = self._body()
        body = self._json(raw)
        match = re.fullmatch(r"/metadata/(label|annotation)", self.path)
        if not match:
            return self._reply(404, f"no route for PUT {self.path}", raw)
        if body is None or not isinstance(body.get("key"), str) or not isinstance(body.get("value"), str):
            return self._reply(400, "key and value are needed", raw)
        key, value = body["key"], body["value"]
        full = LABEL_PREFIX + key
        if not NAME_PART.match(key) or len(full.split("/", 1)[1]) > 63:
            return self._reply(400, f"invalid key: {full}", raw)
        if match[1] == "label" and (len(value) > 63 or not LABEL_VALUE.match(value)):
            return self._reply(400, f"invalid label value: {value!r}", raw)
        self.sidecar.set_meta("labels" if match[1] == "label" else "annotations", key, value)
        return self._reply(200, {}, raw)

    def do_PATCH(self):
        raw = self._body()
        body = self._json(raw) or {}
        match = re.fullmatch(r"/v1beta1/(counters|lists)/([^/:]+)", self.path)
        if not match:
            return self._reply(404, f"no route for PATCH {self.path}", raw)
        try:
            if match[1] == "counters":
                status, result = self.sidecar.update_counter(match[2], body)
            else:
                status, result = self.sidecar.update_list(match[2], body)
        except (TypeError, ValueError) as error:
            status, result = 400, str(error)
        return self._reply(status, result, raw)

    def _watch(self, raw):
        """grpc-gateway's server stream: one JSON object per line, chunked."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.sidecar.record({"time": time.time(), "method": "GET", "path": self.path,
                             "body": raw.decode("utf-8", "replace"), "status": 200,
                             "state": self.sidecar.state()})
        seen = -1
        try:
            while True:
                with self.sidecar.lock:
                    while self.sidecar.version == seen:
                        self.sidecar.lock.wait(timeout=1)
                gs, seen = self.sidecar.snapshot()
                line = (json.dumps({"result": gs}) + "\n").encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            return


def main():
    parser = argparse.ArgumentParser(description="A fake Agones SDK sidecar (REST gateway, local mode).")
    parser.add_argument("--port", type=int, default=9358, help="0 picks a free port (printed, and in --ready-file)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ready-file", help="written as {\"port\": n, \"pid\": p} once listening")
    parser.add_argument("--log", help="one JSON line per request")
    parser.add_argument("--state", default="Scheduled", help="the GameServer's first state (localsdk: Ready)")
    parser.add_argument("--counter", action="append", default=None, help="name=count/capacity (default rooms=0/1000)")
    parser.add_argument("--list", action="append", default=None, help="name=v1,v2/capacity (default players=/1000)")
    parser.add_argument("--unhealthy-after", type=float, default=0,
                        help="seconds without a health ping, once Ready, that make it Unhealthy (0: never)")
    args = parser.parse_args()

    counters = parse_pairs(args.counter if args.counter is not None else ["rooms=0/1000"], "counter")
    lists = parse_pairs(args.list if args.list is not None else ["players=/1000"], "list")
    Handler.sidecar = Sidecar(args.state, counters, lists, args.unhealthy_after, args.log)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    print(f"PORT {port}", flush=True)
    if args.ready_file:
        temporary = args.ready_file + ".tmp"
        with open(temporary, "w", encoding="utf-8") as ready:
            json.dump({"port": port, "pid": os.getpid()}, ready)
        os.rename(temporary, args.ready_file)
    # A parent may start us with SIGTERM blocked (a test runner's thread
    # does): unblocked, or terminating the fake would wait forever.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
