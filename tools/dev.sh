#!/usr/bin/env bash
# `make dev`: run the server with --watch and rebuild the game logic on save.
#
# Edit anything under Sources/GameLogic (or LogicKit, Protocol, GameABI):
# within a second the module is rebuilt, the server sees the new file and
# swaps it in between two messages; connected players stay connected.
# Polls file times (no inotify tools needed). Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

swift build --product gameserver
swift build --product GameLogic
.build/debug/gameserver --watch "$@" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null' EXIT INT TERM

stamp=$(mktemp)
while kill -0 "$server" 2>/dev/null; do
    sleep 1
    if [ -n "$(find Sources/GameLogic Sources/LogicKit Sources/Protocol Sources/GameABI -newer "$stamp" -type f -print -quit)" ]; then
        touch "$stamp"
        echo "dev: change seen, rebuilding GameLogic" >&2
        swift build --product GameLogic || echo "dev: build failed; the server keeps the running module" >&2
    fi
done
