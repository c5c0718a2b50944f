#!/usr/bin/env bash
# The SDK as a game author meets it, end to end against a real server
# (make test-sdk; make test runs it after the suite, make test-asan does not):
#
#  1. This working tree is committed and tagged 9.9.9 in a temporary git
#     repository named Hotswap.
#  2. tools/new-game.sh makes a standalone game package there that depends
#     on it by URL and version (file://.../Hotswap from 9.9.9), as a game in
#     its own repository would. It must build in release (SwiftPM refuses
#     unsafe flags in a versioned dependency: HotswapSDK has none), its
#     module must import no swift_beginAccess (the build rule holds for the
#     SDK's code too), and a gameserver on a free port must serve it:
#     PING answers +PONG, HELP lists its verbs. Its own tests (`swift test`:
#     the template's, on the fake host, product HotswapTesting) pass.
#  3. docs/WRITING-GAMES.md's ```sh blocks run in order in the temporary
#     repository (the in-repo mode), with the checks its <!-- test: ... -->
#     comments name: new game, build, serve, play, edit, rebuild, reload,
#     and a client connected before the reload uses the new verb after it.
#
# The server and gamectl are this tree's debug builds (GAMESERVER, GAMECTL
# to override): building an engine again would double the time. Takes
# 2-4 minutes on 2 cores, mostly the two release builds of the SDK.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
server=${GAMESERVER:-$repo/.build/debug/gameserver}
gamectl=${GAMECTL:-$repo/.build/debug/gamectl}
for tool in "$server" "$gamectl"; do
    [[ -x $tool ]] || { echo "sdk-test: $tool is missing: swift build first" >&2; exit 1; }
done
work=$(mktemp -d /tmp/hotswap-sdk.XXXXXX)
pids=()
current=
cleanup() {
    local status=$?
    # A guide block that failed stopped the script (set -e): show its output.
    if [[ $status != 0 && -n $current ]]; then echo "sdk-test: FAIL in ${current##*/}:" >&2; cat "$current" >&2; fi
    for pid in "${pids[@]}" ${SERVER_PID:-}; do kill "$pid" 2>/dev/null || true; done
    if [[ ${KEEP:-0} == 1 ]]; then echo "sdk-test: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() { echo "sdk-test: FAIL: $*" >&2; exit 1; }
step() { echo "sdk-test: $* ($((SECONDS))s)"; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# 1. The tree as it is (tracked and new files), tagged.
step "tagging this tree as 9.9.9 in $work/Hotswap"
mkdir -p "$work/Hotswap"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [[ -e $f ]] && printf '%s\0' "$f"; done |
    xargs -0 cp --parents -t "$work/Hotswap")
(cd "$work/Hotswap" && git init -q && git add -A &&
    git -c user.email=sdk-test@hotswap -c user.name=sdk-test commit -qm "sdk-test snapshot" && git tag 9.9.9)

# 2. A game in its own package, on Hotswap by version.
step "standalone game on file://$work/Hotswap from 9.9.9"
HOTSWAP_URL="file://$work/Hotswap" HOTSWAP_VERSION=9.9.9 "$repo/tools/new-game.sh" dice "$work/dice" >/dev/null
(cd "$work/dice" && swift build -c release > "$work/dice-build.log" 2>&1) ||
    { tail -30 "$work/dice-build.log"; fail "the standalone game did not build"; }
module=$work/dice/.build/release/libdice.so
[[ -f $module ]] || fail "no $module"
if nm -D --undefined-only "$module" | grep -q swift_beginAccess; then
    fail "$module imports swift_beginAccess: some code in it was built with run-time exclusivity checks"
fi
port=$(free_port) admin=$(free_port)
"$server" --port "$port" --admin-port "$admin" --module "$module" --database :memory: > "$work/dice-server.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do "$repo/tools/say.py" "$port" PING > "$work/dice-ping" 2>/dev/null && break; sleep 0.1; done
grep -qx '+PONG' "$work/dice-ping" || { cat "$work/dice-server.log"; fail "the standalone game does not answer PING"; }
help=$("$repo/tools/say.py" "$port" HELP) || fail "HELP: $help"
[[ $help == "+HELP PING"*"LOGIN name [secret]"*"| ROLL | WINS"* ]] || fail "HELP lists: $help"
kill "${pids[-1]}"
# Its own tests, as its author runs them: a debug build of the game, the
# SDK and HotswapTesting (the product the template's test target uses),
# and the game on the fake host.
step "the standalone game's tests (swift test, on the fake host)"
(cd "$work/dice" && swift test > "$work/dice-test.log" 2>&1) ||
    { tail -40 "$work/dice-test.log"; fail "the standalone game's tests failed"; }
grep -Eq 'Test run with [0-9]+ tests? in [0-9]+ suites? passed' "$work/dice-test.log" ||
    { tail -20 "$work/dice-test.log"; fail "the standalone game's tests did not report a passing run"; }

# 3. The guide, block by block, in the in-repo mode. Its checks:
#    expect TEXT   the last block's output contains TEXT
#    hold LINE...  a client that stays connected sends LINEs now
#    held LINE TEXT  that client sends LINE and must read TEXT
step "running docs/WRITING-GAMES.md in $work/Hotswap"
mkdir -p "$work/Hotswap/.build"
cp -a "$repo/.build/repositories" "$repo/.build/checkouts" "$work/Hotswap/.build/" 2>/dev/null || true
cp "$repo/Package.resolved" "$work/Hotswap/" 2>/dev/null || true
script=$work/guide.sh
awk -v dir="$work" '
    /^```sh$/ { n++; file = dir "/block." n ".sh"; printf "" > file; inblock = 1
                printf "step \"guide block %d\"; current=%s/out.%d\n", n, dir, n
                printf "source %s > \"$current\" 2>&1; cat \"$current\"; last=$current\n", file; next }
    /^```$/ && inblock { inblock = 0; next }
    inblock { print >> file; next }
    /^<!-- test: .* -->$/ { sub(/^<!-- test: /, ""); sub(/ -->$/, ""); print }
' "$repo/docs/WRITING-GAMES.md" > "$script"
grep -q "guide block 1" "$script" || fail "no \`\`\`sh block in docs/WRITING-GAMES.md"
expect() { grep -qF -- "$1" "$last" || fail "guide: expected '$1' in: $(cat "$last")"; }
hold() {
    mkfifo "$work/held.in"
    "$repo/tools/say.py" "$PORT" - < "$work/held.in" > "$work/held.out" 2>&1 &
    pids+=($!)
    exec 9> "$work/held.in"
    for line in "$@"; do echo "$line" >&9; done
}
held() {
    echo "$1" >&9
    for _ in $(seq 100); do grep -qF -- "$2" "$work/held.out" && return 0; sleep 0.1; done
    fail "the held client sent '$1' and did not read '$2': $(cat "$work/held.out")"
}
export PORT ADMIN SERVER GAMECTL
PORT=$(free_port) ADMIN=$(free_port) SERVER=$server GAMECTL=$gamectl
cd "$work/Hotswap"
# shellcheck disable=SC1090
source "$script"
current=
step "passed"
