#!/usr/bin/env python3
"""Replays Agones' SDK conformance sequence against a REST gateway and
checks what the GameServer recorded.

Agones' own conformance run (build/includes/sdk.mk) names the calls
`ready,allocate,setlabel,setannotation,gameserver,health,shutdown,watch,reserve`;
its REST client (test/sdk/restapi/http-api-test.go) retries Ready while the
sidecar starts, opens the watch, then calls Health, Reserve, Allocate, Get,
SetLabel, SetAnnotation and Shutdown. This does the same, and checks after
each step what a real sidecar would show: the state the watch stream
reports, labels and annotations under `agones.dev/sdk-`, 400 for a health
ping without a body, and Reserve going back to Ready by itself.

    tools/agones-conformance.py --port 9358 [--beta]

--beta also runs the counter and list calls (rooms, players). Prints one
line per step; exits 0 when every check held, 1 otherwise.
"""

import argparse
import http.client
import json
import queue
import sys
import threading
import time


class Gateway:
    def __init__(self, host, port, timeout=5.0):
        self.host, self.port, self.timeout = host, port, timeout

    def call(self, method, path, body=None):
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if data is not None else {}
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            raw = response.read()
            try:
                payload = json.loads(raw) if raw else None
            except ValueError:
                payload = raw.decode("utf-8", "replace")
            return response.status, payload
        finally:
            connection.close()

    def watch(self):
        """Every GameServer the stream sends, as they come, into a queue."""
        updates = queue.Queue()
        connection = http.client.HTTPConnection(self.host, self.port, timeout=None)
        connection.request("GET", "/watch/gameserver")
        response = connection.getresponse()
        if response.status != 200:
            raise RuntimeError(f"watch: HTTP {response.status}")

        def pump():
            try:
                while True:
                    line = response.readline()
                    if not line:
                        return
                    if line.strip():
                        updates.put(json.loads(line)["result"])
            except (OSError, ValueError, http.client.HTTPException):
                return

        threading.Thread(target=pump, daemon=True).start()
        return connection, updates


class Run:
    def __init__(self):
        self.failures = 0

    def check(self, step, ok, detail=""):
        print(f"{'ok  ' if ok else 'FAIL'} {step}{': ' + detail if detail and not ok else ''}", flush=True)
        if not ok:
            self.failures += 1
        return ok


def wait_state(updates, state, seconds):
    """The first update (in order) whose state is `state`, within `seconds`."""
    deadline = time.monotonic() + seconds
    seen = []
    while time.monotonic() < deadline:
        try:
            gs = updates.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        seen.append(gs["status"]["state"])
        if gs["status"]["state"] == state:
            return gs, seen
    return None, seen


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--beta", action="store_true", help="also counters and lists (rooms, players)")
    parser.add_argument("--ready-attempts", type=int, default=15)
    args = parser.parse_args()
    gateway = Gateway(args.host, args.port)
    run = Run()

    # ready: retried while the sidecar starts, as the REST client does.
    status = None
    for attempt in range(args.ready_attempts):
        try:
            status, _ = gateway.call("POST", "/ready", {})
            break
        except OSError:
            time.sleep(min(2.0, 0.1 * 2 ** attempt))
    if not run.check("ready", status == 200, f"HTTP {status}"):
        return 1

    # watch: the current GameServer first, then every change.
    _, updates = gateway.watch()
    gs, seen = wait_state(updates, "Ready", 5)
    run.check("watch", gs is not None, f"states seen {seen}")

    # health: {} is taken, an empty body is not.
    run.check("health", gateway.call("POST", "/health", {})[0] == 200)
    run.check("health without a body is 400", gateway.call("POST", "/health", b"")[0] == 400)

    # reserve: Reserved, then Ready again by itself.
    run.check("reserve", gateway.call("POST", "/reserve", {"seconds": 1})[0] == 200)
    gs, seen = wait_state(updates, "Reserved", 5)
    run.check("reserve: watch shows Reserved", gs is not None, f"states seen {seen}")
    gs, seen = wait_state(updates, "Ready", 5)
    run.check("reserve: back to Ready after its seconds", gs is not None, f"states seen {seen}")

    # allocate.
    run.check("allocate", gateway.call("POST", "/allocate", {})[0] == 200)
    gs, seen = wait_state(updates, "Allocated", 5)
    run.check("allocate: watch shows Allocated", gs is not None, f"states seen {seen}")

    # setlabel, setannotation, gameserver.
    run.check("setlabel", gateway.call("PUT", "/metadata/label", {"key": "conformance", "value": "rest"})[0] == 200)
    run.check("setannotation",
              gateway.call("PUT", "/metadata/annotation", {"key": "conformance", "value": "REST api, with spaces"})[0] == 200)
    status, gs = gateway.call("GET", "/gameserver")
    meta = (gs or {}).get("object_meta", {}) if isinstance(gs, dict) else {}
    run.check("gameserver", status == 200 and gs["status"]["state"] == "Allocated", f"HTTP {status}, {gs}")
    run.check("gameserver: label agones.dev/sdk-conformance",
              meta.get("labels", {}).get("agones.dev/sdk-conformance") == "rest", f"{meta.get('labels')}")
    run.check("gameserver: annotation agones.dev/sdk-conformance",
              meta.get("annotations", {}).get("agones.dev/sdk-conformance") == "REST api, with spaces",
              f"{meta.get('annotations')}")

    if args.beta:
        status, counter = gateway.call("GET", "/v1beta1/counters/rooms")
        run.check("counter: get rooms", status == 200 and "count" in counter, f"HTTP {status}, {counter}")
        status, counter = gateway.call("PATCH", "/v1beta1/counters/rooms", {"countDiff": 2})
        run.check("counter: countDiff 2", status == 200, f"HTTP {status}, {counter}")
        status, counter = gateway.call("PATCH", "/v1beta1/counters/rooms", {"count": 1})
        run.check("counter: count 1", status == 200 and int(counter["count"]) == 1, f"HTTP {status}, {counter}")
        run.check("counter: negative is refused", gateway.call("PATCH", "/v1beta1/counters/rooms", {"countDiff": -5})[0] == 400)
        run.check("list: add alice", gateway.call("POST", "/v1beta1/lists/players:addValue", {"value": "alice"})[0] == 200)
        run.check("list: alice twice is 409", gateway.call("POST", "/v1beta1/lists/players:addValue", {"value": "alice"})[0] == 409)
        status, listed = gateway.call("GET", "/v1beta1/lists/players")
        run.check("list: get", status == 200 and listed.get("values") == ["alice"], f"HTTP {status}, {listed}")
        run.check("list: remove alice", gateway.call("POST", "/v1beta1/lists/players:removeValue", {"value": "alice"})[0] == 200)
        run.check("list: remove absent is 404", gateway.call("POST", "/v1beta1/lists/players:removeValue", {"value": "alice"})[0] == 404)

    # shutdown: final.
    run.check("shutdown", gateway.call("POST", "/shutdown", {})[0] == 200)
    gs, seen = wait_state(updates, "Shutdown", 5)
    run.check("shutdown: watch shows Shutdown", gs is not None, f"states seen {seen}")
    gateway.call("POST", "/ready", {})
    run.check("shutdown is final", gateway.call("GET", "/gameserver")[1]["status"]["state"] == "Shutdown")

    print(f"{'PASS' if run.failures == 0 else 'FAIL'}: {run.failures} failed checks", flush=True)
    return 0 if run.failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
