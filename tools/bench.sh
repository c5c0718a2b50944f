#!/usr/bin/env bash
# Side-by-side benchmark of the release gameserver and redis-server on
# loopback, in one run, with the ratios ours/redis. Bounded (~3 minutes);
# stops everything it started.
#
#   tools/bench.sh            (SECONDS_PER_RUN=10 CONNECTIONS=10000 to change)
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq redis-server redis-tools >/dev/null
fi
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
CONNECTIONS=${CONNECTIONS:-10000}
REDIS_PORT=6399
GAME_PORT=7799
ADMIN_PORT=7798

swift build -c release --product gameserver >/dev/null
swift build -c release --product GameLogic >/dev/null
swift build -c release --product loadtest >/dev/null
LOADTEST=.build/release/loadtest

ulimit -n "$(ulimit -Hn)"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

redis-server --port $REDIS_PORT --save "" --appendonly no --maxclients 20000 --loglevel warning &
pids+=($!)
redis_pid=$!
.build/release/gameserver --port $GAME_PORT --admin-port $ADMIN_PORT --rate-limit 0 \
    --login-timeout 0 --idle-timeout 0 --max-connections 20000 --log-level warning &
pids+=($!)
game_pid=$!
sleep 1

rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
rps() { # redis-benchmark's requests per second for ping_inline
    redis-benchmark -p "$1" -t ping_inline -c 50 -n "$2" -P "$3" -q --csv | awk -F'"' '/PING_INLINE/ {print int($4)}'
}
lt() { # loadtest JSON field
    python3 -c "import json,sys; print(int(json.load(open('$1'))['$2']))"
}
ratio() { python3 -c "print(f'{$1/$2:.2f}x')"; }
row() { printf '%-46s %14s %14s %8s\n' "$1" "$2" "$3" "$4"; }

echo "== redis-benchmark -t ping_inline -c 50"
ours_p1=$(rps $GAME_PORT 300000 1);  redis_p1=$(rps $REDIS_PORT 300000 1)
ours_p16=$(rps $GAME_PORT 2000000 16); redis_p16=$(rps $REDIS_PORT 2000000 16)

echo "== loadtest ping (calibration against redis-benchmark) and chat"
$LOADTEST ping --target redis --port $REDIS_PORT --clients 50 --pipeline 1 --duration "$SECONDS_PER_RUN" --quiet --json /tmp/lt-redis-p1.json >/dev/null || echo "loadtest reported losses (lt-redis-p1)"
$LOADTEST ping --target redis --port $REDIS_PORT --clients 50 --pipeline 16 --duration "$SECONDS_PER_RUN" --quiet --json /tmp/lt-redis-p16.json >/dev/null || echo "loadtest reported losses (lt-redis-p16)"
$LOADTEST ping --port $GAME_PORT --clients 50 --pipeline 16 --duration "$SECONDS_PER_RUN" --quiet --json /tmp/lt-ours-p16.json >/dev/null || echo "loadtest reported losses (lt-ours-p16)"
$LOADTEST chat --port $GAME_PORT --rooms 20 --members 10 --pipeline 4 --duration "$SECONDS_PER_RUN" --quiet --json /tmp/lt-ours-chat.json >/dev/null || echo "loadtest reported losses (lt-ours-chat)"
$LOADTEST chat --target redis --port $REDIS_PORT --rooms 20 --members 10 --pipeline 4 --duration "$SECONDS_PER_RUN" --quiet --json /tmp/lt-redis-chat.json >/dev/null || echo "loadtest reported losses (lt-redis-chat)"

echo "== $CONNECTIONS idle connections each"
measure_idle() { # port pid -> KiB per connection * 1000
    local before after
    before=$(rss "$2")
    exec 3> >(python3 tools/hold-connections.py "$CONNECTIONS" 127.0.0.1 "$1" > /tmp/hold.out)
    until grep -q ready /tmp/hold.out 2>/dev/null; do sleep 0.2; done
    sleep 1
    after=$(rss "$2")
    echo $(( (after - before) * 1024 / CONNECTIONS ))
    exec 3>&-
    sleep 1
    rm -f /tmp/hold.out
}
ours_idle=$(measure_idle $GAME_PORT $game_pid)
redis_idle=$(measure_idle $REDIS_PORT $redis_pid)

echo "== reload under load with $CONNECTIONS sessions connected"
exec 4> >(python3 tools/hold-connections.py "$CONNECTIONS" 127.0.0.1 $GAME_PORT > /tmp/hold.out)
until grep -q ready /tmp/hold.out 2>/dev/null; do sleep 0.2; done
reload_status=0
# A rebuilt module (same code, one padding byte): reloading the file that is
# already serving would answer "+OK unchanged" and swap nothing.
cp .build/release/libGameLogic.so .build/release/libGameLogic-rebuilt.so
printf '\0' >> .build/release/libGameLogic-rebuilt.so
$LOADTEST ping --port $GAME_PORT --clients 50 --pipeline 4 --duration 6 --reload-at 3 --admin-port $ADMIN_PORT \
    --reload-path "$PWD/.build/release/libGameLogic-rebuilt.so" --quiet --json /tmp/lt-reload.json > /tmp/lt-reload.txt || reload_status=$?
exec 4>&-
rm -f /tmp/hold.out

echo
row "measure" "hotswap" "redis" "ours/redis"
row "ping_inline -P 1 (redis-benchmark, req/s)" "$ours_p1" "$redis_p1" "$(ratio "$ours_p1" "$redis_p1")"
row "ping_inline -P 16 (redis-benchmark, req/s)" "$ours_p16" "$redis_p16" "$(ratio "$ours_p16" "$redis_p16")"
row "ping -P 16 (loadtest, req/s)" "$(lt /tmp/lt-ours-p16.json throughput)" "$(lt /tmp/lt-redis-p16.json throughput)" \
    "$(ratio "$(lt /tmp/lt-ours-p16.json throughput)" "$(lt /tmp/lt-redis-p16.json throughput)")"
row "chat 20x10 deliveries/s (loadtest)" "$(lt /tmp/lt-ours-chat.json deliveries_per_second)" \
    "$(lt /tmp/lt-redis-chat.json deliveries_per_second)" \
    "$(ratio "$(lt /tmp/lt-ours-chat.json deliveries_per_second)" "$(lt /tmp/lt-redis-chat.json deliveries_per_second)")"
row "idle memory per connection (bytes)" "$ours_idle" "$redis_idle" "$(ratio "$ours_idle" "$redis_idle")"
echo
echo "calibration: loadtest ping against redis reaches $(ratio "$(lt /tmp/lt-redis-p1.json throughput)" "$redis_p1") (-P 1)" \
     "and $(ratio "$(lt /tmp/lt-redis-p16.json throughput)" "$redis_p16") (-P 16) of redis-benchmark"
echo
echo "reload under load ($CONNECTIONS idle sessions + 50 pinging clients):"
grep -E "^(reload|lost)" /tmp/lt-reload.txt
exit $reload_status
