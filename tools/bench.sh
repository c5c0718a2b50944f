#!/usr/bin/env bash
# Side-by-side benchmark of the release gameserver and redis-server on
# loopback, in one run, with the ratios ours/redis. Bounded (~3 minutes);
# stops everything it started.
#
#   tools/bench.sh            (SECONDS_PER_RUN=10 CONNECTIONS=10000 ROUNDS=5 to change;
#                              SERVER_ARGS="--busy-poll 50" passes flags to gameserver)
#
# The redis-benchmark rows are medians of ROUNDS alternating rounds (ours,
# redis, ours, redis, ...), each with the server's CPU per request: the
# utime+stime of the server process (/proc/PID/stat) over the run, divided by
# the requests. The client shares the machine, so a server that is cheaper
# per request is not necessarily faster: see BENCHMARKS.md, "The -P 16 gap".
set -euo pipefail
case "${1:-}" in -h|--help) # the comment above is the usage
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;; esac
cd "$(dirname "$0")/.."
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq redis-server redis-tools >/dev/null
fi
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
CONNECTIONS=${CONNECTIONS:-10000}
ROUNDS=${ROUNDS:-5}
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
    --database "$(mktemp -d)/bench.sqlite" --login-timeout 0 --idle-timeout 0 --max-connections 20000 --log-level warning ${SERVER_ARGS:-} &
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
cpu_ticks() { # utime+stime of a process, in clock ticks (fields 14 and 15 of /proc/PID/stat)
    sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}
bench_once() { # port pid requests pipeline -> "req/s server-CPU-µs-per-request"
    local before after r
    before=$(cpu_ticks "$2")
    r=$(rps "$1" "$3" "$4")
    after=$(cpu_ticks "$2")
    echo "$r $(python3 -c "print(f'{($after - $before) / $(getconf CLK_TCK) * 1e6 / $3:.3f}')")"
}
median() { python3 -c "import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }
bench_rounds() { # requests pipeline -> sets ours_rps redis_rps ours_cpu redis_cpu (medians)
    local i o r ors=() rrs=() ocs=() rcs=()
    for ((i = 0; i < ROUNDS; i++)); do
        o=$(bench_once $GAME_PORT "$game_pid" "$1" "$2"); r=$(bench_once $REDIS_PORT "$redis_pid" "$1" "$2")
        ors+=("${o% *}"); ocs+=("${o#* }"); rrs+=("${r% *}"); rcs+=("${r#* }")
        echo "   round $((i + 1)) -P $2: hotswap ${o% *} req/s ${o#* } µs/req, redis ${r% *} req/s ${r#* } µs/req"
    done
    ours_rps=$(median "${ors[@]}"); redis_rps=$(median "${rrs[@]}")
    ours_cpu=$(median "${ocs[@]}"); redis_cpu=$(median "${rcs[@]}")
    ours_rps=${ours_rps%.*}; redis_rps=${redis_rps%.*}
}
row() { printf '%-46s %14s %14s %8s\n' "$1" "$2" "$3" "$4"; }

echo "== redis-benchmark -t ping_inline -c 50, $ROUNDS alternating rounds"
bench_rounds 300000 1
ours_p1=$ours_rps; redis_p1=$redis_rps; ours_cpu_p1=$ours_cpu; redis_cpu_p1=$redis_cpu
bench_rounds 2000000 16
ours_p16=$ours_rps; redis_p16=$redis_rps; ours_cpu_p16=$ours_cpu; redis_cpu_p16=$redis_cpu

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
echo "redis-benchmark rows: medians of $ROUNDS alternating rounds"
row "measure" "hotswap" "redis" "ours/redis"
row "ping_inline -P 1 (redis-benchmark, req/s)" "$ours_p1" "$redis_p1" "$(ratio "$ours_p1" "$redis_p1")"
row "ping_inline -P 16 (redis-benchmark, req/s)" "$ours_p16" "$redis_p16" "$(ratio "$ours_p16" "$redis_p16")"
row "server CPU per request -P 1 (µs)" "$ours_cpu_p1" "$redis_cpu_p1" "$(ratio "$ours_cpu_p1" "$redis_cpu_p1")"
row "server CPU per request -P 16 (µs)" "$ours_cpu_p16" "$redis_cpu_p16" "$(ratio "$ours_cpu_p16" "$redis_cpu_p16")"
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
