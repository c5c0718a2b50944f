#!/usr/bin/env bash
# `make dev`: run the server with --watch and rebuild the game logic on save.
#
# Edit anything under Sources/Games/Gems or Sources/GameLogic (or LogicKit, Protocol, GameABI):
# within a second the module is rebuilt, the server sees the new file and
# swaps it in between two messages; connected players stay connected.
# Polls file times (no inotify tools needed). Ctrl-C stops both.
#
#   tools/dev.sh [GAMESERVER-FLAG ...]   (or make dev ARGS="..."; the flags go to gameserver --watch)
set -euo pipefail
case "${1:-}" in -h|--help) # the comment above is the usage
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;; esac
cd "$(dirname "$0")/.."

swift build --product gameserver
swift build --product GameLogic
.build/debug/gameserver --watch "$@" &
server=$!
# Ctrl-C (or a TERM) stops the server and ends the session: exit 0, not
# the status of the interrupted sleep, so make does not report an error.
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -f "${stamp:-}"' EXIT
trap 'exit 0' INT TERM

stamp=$(mktemp)
while kill -0 "$server" 2>/dev/null; do
    sleep 1
    if [ -n "$(find Sources/Games/Gems Sources/GameLogic Sources/LogicKit Sources/Protocol Sources/GameABI -newer "$stamp" -type f -print -quit)" ]; then
        touch "$stamp"
        echo "dev: change seen, rebuilding GameLogic" >&2
        swift build --product GameLogic || echo "dev: build failed; the server keeps the running module" >&2
    fi
done
