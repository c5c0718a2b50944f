#!/usr/bin/env bash
# One real scrape: starts a release gameserver with --metrics-port, a player
# who makes a few requests, and a Prometheus server (Debian's package,
# installed when missing) with a temporary config that scrapes the server
# every second; then asks Prometheus's HTTP API for `up` and a few hotswap
# metrics, prints them, and stops and removes everything it started.
#
#   tools/prom-scrape.sh            (SERVER=path/to/gameserver to use another build)
set -euo pipefail
case "${1:-}" in -h|--help) # the comment above is the usage
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;; esac
cd "$(dirname "$0")/.."
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
if ! command -v prometheus >/dev/null; then
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
SERVER=${SERVER:-.build/release/gameserver}
if [ ! -x "$SERVER" ]; then
    swift build -c release --product gameserver >/dev/null
    swift build -c release --product GameLogic >/dev/null
fi

work=$(mktemp -d /tmp/prom-scrape.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$SERVER" --port 0 --admin-port 0 --metrics-port 0 --ready-file "$work/ready.json" --log-level warning &
pids+=($!)
for _ in $(seq 200); do [ -s "$work/ready.json" ] && break; sleep 0.05; done
field() { python3 -c "import json,sys; print(json.load(open('$work/ready.json'))[sys.argv[1]]['port'])" "$1"; }
game_port=$(field game)
metrics_port=$(field metrics)
echo "gameserver: game port $game_port, metrics http://127.0.0.1:$metrics_port/metrics"

# A player who logs in, makes 20 requests and stays connected.
python3 - "$game_port" <<'EOF' &
import socket, sys, time
player = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
player.sendall(b"LOGIN scraped\nJOIN lobby\n" + b"PING\n" * 18)
received = b""
while received.count(b"\n") < 20:
    received += player.recv(65536)
time.sleep(3600)
EOF
pids+=($!)

prometheus_port=$(python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
cat > "$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: hotswap
    static_configs:
      - targets: ["127.0.0.1:$metrics_port"]
EOF
prometheus --config.file "$work/prometheus.yml" --storage.tsdb.path "$work/data" \
    --web.listen-address "127.0.0.1:$prometheus_port" --log.level warn 2>"$work/prometheus.log" &
pids+=($!)
echo "prometheus $(prometheus --version 2>&1 | awk 'NR == 1 {print $3}') on 127.0.0.1:$prometheus_port, scraping every second"

query() { # PromQL -> "metric{labels} value" lines from the HTTP API
    python3 - "$prometheus_port" "$1" <<'EOF'
import json, sys, urllib.parse, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/api/v1/query?" + urllib.parse.urlencode({"query": sys.argv[2]})
try:
    answer = json.load(urllib.request.urlopen(url, timeout=2))
except OSError:
    sys.exit(0)
for series in answer["data"]["result"]:
    labels = ",".join(f'{k}="{v}"' for k, v in sorted(series["metric"].items()) if k != "__name__")
    print(f'{series["metric"].get("__name__", sys.argv[2])}{{{labels}}} {series["value"][1]}')
EOF
}

# Wait (at most 60 s) until Prometheus has scraped the server and seen the player's requests.
for _ in $(seq 600); do
    if query 'hotswap_requests_total >= 20' | grep -q .; then break; fi
    sleep 0.1
done
echo
echo "== query: up"
query up
echo "== query: hotswap_requests_total"
query hotswap_requests_total
echo "== query: hotswap_sessions"
query hotswap_sessions
echo "== query: hotswap_module_info"
query hotswap_module_info
echo "== query: process_resident_memory_bytes"
query process_resident_memory_bytes
up=$(query up | awk '{print $2}')
if [ "$up" != "1" ]; then
    echo "Prometheus did not scrape the server (up=$up); its log:" >&2
    cat "$work/prometheus.log" >&2
    exit 1
fi
