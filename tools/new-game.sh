#!/usr/bin/env bash
# Makes a new game from templates/game (make new-game NAME=mygame [DIR=...]).
#
#   tools/new-game.sh mygame          in this repository: Sources/Games/Mygame/{Game,Module},
#                                     Tests/MygameTests, and targets appended to Package.swift
#   tools/new-game.sh mygame ../mygame  a standalone package there, depending on Hotswap
#                                     by URL and version: $HOTSWAP_URL (default: this clone's
#                                     origin, else file://this-repo) from $HOTSWAP_VERSION
#                                     (default: the newest tag)
#
# NAME is the module's name (STATUS shows it, the library is libNAME.so):
# lower case, a letter first, then letters, digits or _. The Swift type is
# its CamelCase (my_game → MyGame).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
template=$repo/templates/game
name=${1:-}
dir=${2:-}

if [[ ! $name =~ ^[a-z][a-z0-9_]{0,31}$ ]]; then
    echo "new-game: NAME must be lower case, a letter first, then letters, digits or _ (got '${name}')" >&2
    exit 2
fi
type=$(echo "$name" | awk -F_ '{ for (i = 1; i <= NF; i++) printf "%s", toupper(substr($i, 1, 1)) substr($i, 2) }')

# Copies one template file, filling in the placeholders (to stdout for "-").
fill() {
    if [[ $2 == - ]]; then substitute "$1"; else mkdir -p "$(dirname "$2")" && substitute "$1" > "$2"; fi
}
substitute() {
    sed -e "s|__Type__|$type|g" -e "s|__name__|$name|g" \
        -e "s|__HOTSWAP_URL__|${url:-}|g" -e "s|__HOTSWAP_VERSION__|${version:-}|g" \
        -e "s|__HOTSWAP_PACKAGE__|${package:-}|g" "$1"
}

if [[ -z $dir ]]; then
    # In this repository.
    if [[ -e $repo/Sources/Games/$type || -e $repo/Tests/${type}Tests ]] || grep -q "name: \"$name\"" "$repo/Package.swift"; then
        echo "new-game: a game '$name' ($type) already exists here" >&2
        exit 1
    fi
    fill "$template/Game/__Type__.swift" "$repo/Sources/Games/$type/Game/$type.swift"
    fill "$template/Module/Exports.swift" "$repo/Sources/Games/$type/Module/Exports.swift"
    fill "$template/Tests/__Type__Tests.swift" "$repo/Tests/${type}Tests/${type}Tests.swift"
    fill "$template/Package.inrepo.swift" - >> "$repo/Package.swift"
    echo "new-game: $name in Sources/Games/$type and Tests/${type}Tests (targets ${type}Game, ${type}Module, ${type}Tests)"
    echo "  build:  make module NAME=$name        → .build/release/lib$name.so"
    echo "  serve:  .build/release/gameserver --module .build/release/lib$name.so"
    echo "  test:   swift build --build-tests && swift test --skip-build --filter ${type}Tests   (on the fake host)"
    exit 0
fi

# A standalone package.
if [[ -e $dir && -n $(ls -A "$dir" 2>/dev/null) ]]; then
    echo "new-game: $dir exists and is not empty" >&2
    exit 1
fi
url=${HOTSWAP_URL:-$(git -C "$repo" remote get-url origin 2>/dev/null || echo "file://$repo")}
version=${HOTSWAP_VERSION:-$(git -C "$repo" describe --tags --abbrev=0 2>/dev/null || true)}
if [[ -z $version ]]; then
    echo "new-game: no version to depend on: tag a release of Hotswap or set HOTSWAP_VERSION" >&2
    exit 1
fi
# SwiftPM names a URL dependency by the URL's last component.
package=$(basename "${url%/}" .git)
fill "$template/Package.standalone.swift" "$dir/Package.swift"
fill "$template/Game/__Type__.swift" "$dir/Sources/Game/$type.swift"
fill "$template/Module/Exports.swift" "$dir/Sources/Module/Exports.swift"
fill "$template/Tests/__Type__Tests.swift" "$dir/Tests/${type}Tests/${type}Tests.swift"
printf '.build/\n.swiftpm/\n*.sqlite*\n' > "$dir/.gitignore"
echo "new-game: $name in $dir, on $url from $version"
echo "  build:  (cd $dir && swift build -c release)   → $dir/.build/release/lib$name.so"
echo "  test:   (cd $dir && swift test)               (on Hotswap's fake host)"
