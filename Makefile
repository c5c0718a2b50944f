# Hotswap: the two commands a new user needs are `make run` and `make test`.
# Both install libuv's headers with apt-get first when they are missing.

SWIFT ?= swift
ARGS ?=
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps build release module new-game run dev test test-sdk test-asan fuzz check-release ci clean

# libuv1-dev for the engine's event loop, libsqlite3-dev for the database
# (GRDB links the system SQLite), sqlite3 for the shell the tests and the
# backup procedure use; pkg-config so SwiftPM finds them; prometheus for
# promtool, which the tests use to check /metrics (and tools/prom-scrape.sh
# for a real scrape); postgresql (server binaries: the tests start throwaway
# clusters with tools/pg-throwaway.sh, nothing need run beforehand) and
# libpq-dev for the PostgreSQL storage; noninteractive, as its tzdata
# dependency would otherwise ask for a time zone on a fresh machine.
deps:
	@if ! pkg-config --exists libuv sqlite3 2>/dev/null || ! command -v sqlite3 >/dev/null; then \
		echo "installing libuv1-dev libsqlite3-dev sqlite3 (apt-get)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq libuv1-dev libsqlite3-dev sqlite3 pkg-config; \
	fi
	@if ! command -v promtool >/dev/null 2>&1; then \
		echo "installing prometheus for promtool (apt-get)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends prometheus; \
	fi
	@if ! pkg-config --exists libpq 2>/dev/null || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "installing postgresql libpq-dev (apt-get)"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends postgresql libpq-dev; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# Rebuilds the games where `make run`'s server reloads them from
# (.build/release/libGameLogic.so, and libCycles.so for a server started
# with --module .build/release/libCycles.so); then `swift run gamectl reload`.
# NAME=mygame builds only a game made by `make new-game` (.build/release/libmygame.so).
NAME ?=
module: deps
ifeq ($(NAME),)
	$(SWIFT) build -c release --product GameLogic
	$(SWIFT) build -c release --product Cycles
else
	$(SWIFT) build -c release --product $(NAME)
endif

# A new game from templates/game (docs/WRITING-GAMES.md): in this repository
# (Sources/Games, Tests, Package.swift), or with DIR=../mygame a package of
# its own that depends on Hotswap by URL and version.
DIR ?=
new-game:
	tools/new-game.sh "$(NAME)" "$(DIR)"

# Builds a release server and its games (libGameLogic.so, served by default,
# and libCycles.so), then serves on 127.0.0.1:7777.
# Extra flags: make run ARGS="--port 9000 --log-level debug"
# Light cycles instead: make run ARGS="--module .build/release/libCycles.so"
run: release
	.build/release/gameserver $(ARGS)

# Development: server with --watch, GameLogic rebuilt on every save.
dev: deps
	tools/dev.sh $(ARGS)

# Builds everything the tests load (server, GameLogic, Cycles and fixture dylibs),
# then runs the whole suite.
# .build-variant holds GameLogicV2 built with a changed Protocol library, for
# the test that a swapped-in module runs its own copy of Protocol.
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) build --product GameLogicV2 --scratch-path .build-variant -Xswiftc -DHOTSWAP_PROTOCOL_VARIANT
	HOTSWAP_REQUIRE_PROMTOOL=1 $(SWIFT) test --skip-build --disable-xctest
	$(MAKE) test-sdk

# The SDK as a game author meets it (tools/sdk-test.sh): this tree tagged in
# a temporary repository, a standalone game depending on it by version,
# then docs/WRITING-GAMES.md's commands run against a real server. Not in
# test-asan: it builds packages of its own, which an ASan pass cannot make
# faster or safer (the modules it builds are plain release builds anyway).
test-sdk:
	tools/sdk-test.sh

# The whole suite again under AddressSanitizer, in its own build folder.
# Leak checking is off: a server that exits does not free what it owns.
test-asan: deps
	$(SWIFT) build --build-tests --scratch-path .build-asan -Xswiftc -sanitize=address
	HOTSWAP_REQUIRE_PROMTOOL=1 ASAN_OPTIONS=detect_leaks=0 $(SWIFT) test --skip-build --scratch-path .build-asan --disable-xctest

# libFuzzer for FUZZ_SECONDS per target, from copies of the committed seed
# corpora: ProtocolFuzzer (framer, tokenizer, writer) and EngineFuzzer
# (ELFCheck, admin parser). A crashing input is saved in .build-fuzz/artifacts.
FUZZ_SECONDS ?= 60
fuzz: deps
	$(SWIFT) build --product ProtocolFuzzer --scratch-path .build-fuzz \
		-Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING
	$(SWIFT) build --product EngineFuzzer --scratch-path .build-fuzz \
		-Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING
	rm -rf .build-fuzz/corpus .build-fuzz/engine-corpus && mkdir -p .build-fuzz/corpus .build-fuzz/engine-corpus .build-fuzz/artifacts
	cp Tests/Fuzz/corpus/* .build-fuzz/corpus/
	cp Tests/Fuzz/engine-corpus/* .build-fuzz/engine-corpus/
	.build-fuzz/debug/ProtocolFuzzer -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
		-artifact_prefix=.build-fuzz/artifacts/ .build-fuzz/corpus
	.build-fuzz/debug/EngineFuzzer -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
		-artifact_prefix=.build-fuzz/artifacts/ .build-fuzz/engine-corpus

# The release engine carries no test knobs (Sources/Engine/Upgrade/
# TestKnobs.swift, compiled into debug builds only): no environment variable
# can make a production upgrade hang or crash. Fails if the release binary
# names one, and if the debug build does not (a check that could not fail
# would prove nothing). Run after `make test`, which builds the debug one.
check-release: deps
	$(SWIFT) build -c release --product gameserver
	@if grep -a -o 'HOTSWAP_TEST_[A-Z_]*' .build/release/gameserver | sort -u | grep .; then \
		echo "check-release: the release gameserver contains the test knobs above"; exit 1; fi
	@grep -a -q HOTSWAP_TEST_RESTORE_FAULT .build/debug/gameserver || \
		{ echo "check-release: the debug gameserver lacks HOTSWAP_TEST_RESTORE_FAULT: the check cannot see knobs"; exit 1; }
	@echo "check-release: the release gameserver has no test knobs"

# What CI runs: the README's test command, then fuzzing and ASan.
ci: test check-release fuzz test-asan

clean:
	rm -rf .build .build-variant .build-fuzz .build-asan
