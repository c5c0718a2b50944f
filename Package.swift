// swift-tools-version: 6.2
//
// Hotswap: a multiplayer TCP game server whose game logic is a dynamic
// library that can be replaced while players stay connected.
//
//   Protocol   pure wire format (framing, tokenizing, encoding), no I/O
//   GameABI    the C header both sides share at run time: the only contract
//   UVKit      the small libuv layer the engine and loadtest share
//   HotswapEngine  the engine: World (state), LogicHost (modules),
//              Transport (sockets), sessions, admin console
//   Server     `gameserver`, the engine's entry point
//   LogicKit   Swift conveniences over the C state table, linked into modules
//   GameLogic  the default game, a `.dynamic` library loaded by the engine
//   FaultGuard C trampolines, signal handlers and watchdog that contain a
//              crash or a hang in module code (see its header)
//   UpgradeSupport  what an engine upgrade needs in C: the Linux calls
//              Swift's Glibc module does not show (memfd, close_range, build
//              id), signal handlers that lose nothing across the exec, and
//              the restore guard (a crash or hang before serving hands back)
import PackageDescription

/// Swift logic modules are built without run-time exclusivity tracking: the
/// runtime links each dynamic access into a per-thread list of records on
/// the caller's stack, and a fault the engine contains abandons those frames
/// without ending the access, which would leave the list pointing into dead
/// stack for the engine's next access (docs/ADMIN.md, "When game logic
/// crashes or hangs", "The module build rule"; game_abi.h says it too).
let moduleSettings: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"])]

let package = Package(
    name: "Hotswap",
    products: [
        .executable(name: "gameserver", targets: ["Server"]),
        .executable(name: "gamectl", targets: ["gamectl"]),
        .executable(name: "ProtocolFuzzer", targets: ["ProtocolFuzzer"]),
        .executable(name: "EngineFuzzer", targets: ["EngineFuzzer"]),
        .executable(name: "loadtest", targets: ["loadtest"]),
        .executable(name: "metrics-cost", targets: ["metrics-cost"]),
        .library(name: "GameLogic", type: .dynamic, targets: ["GameLogic"]),
        // A fake host: unit-test a game module with no server and no sockets.
        .library(name: "HotswapTesting", targets: ["HotswapTesting"]),
        // A second game on the SDK: light cycles on room ticks (README, "Cycles").
        .library(name: "Cycles", type: .dynamic, targets: ["Cycles"]),
        // The SDK a game in its own package depends on by URL and version
        // (templates/game, docs/WRITING-GAMES.md). It carries no unsafe
        // flag, which SwiftPM refuses in a versioned dependency: LogicKit
        // is written to need no run-time exclusivity check (tools/sdk-test.sh
        // proves a game's release module imports no swift_beginAccess).
        .library(name: "HotswapSDK", targets: ["LogicKit", "GameABI", "Protocol"]),
        // Test fixtures: logic modules the tests load into a real server.
        .library(name: "GameLogicV2", type: .dynamic, targets: ["GameLogicV2"]),
        .library(name: "GameLogicV3", type: .dynamic, targets: ["GameLogicV3"]),
        .library(name: "WrongABIModule", type: .dynamic, targets: ["WrongABIModule"]),
        .library(name: "NoHandleModule", type: .dynamic, targets: ["NoHandleModule"]),
        .library(name: "RetypeWithoutMigrateModule", type: .dynamic, targets: ["RetypeWithoutMigrateModule"]),
        .library(name: "FailingMigrateModule", type: .dynamic, targets: ["FailingMigrateModule"]),
        .library(name: "FailingLoadModule", type: .dynamic, targets: ["FailingLoadModule"]),
        .library(name: "BadCallsModule", type: .dynamic, targets: ["BadCallsModule"]),
        .library(name: "HookProbeModule", type: .dynamic, targets: ["HookProbeModule"]),
        .library(name: "PlayerFieldsModule", type: .dynamic, targets: ["PlayerFieldsModule"]),
        .library(name: "SlowRetypeModule", type: .dynamic, targets: ["SlowRetypeModule"]),
        .library(name: "FaultyABIVersionModule", type: .dynamic, targets: ["FaultyABIVersionModule"]),
        // ABI 1.5: FaultyModule's score retyped, with and without hotswap_migrate_down.
        .library(name: "MigrateDownModule", type: .dynamic, targets: ["MigrateDownModule"]),
        .library(name: "RetypeNoDownModule", type: .dynamic, targets: ["RetypeNoDownModule"]),
        // Fault-guard fixtures: modules that crash or hang on request.
        .library(name: "FaultyModule", type: .dynamic, targets: ["FaultyModule"]),
        .library(name: "FaultySwiftModule", type: .dynamic, targets: ["FaultySwiftModule"]),
        .library(name: "FaultyMigrateModule", type: .dynamic, targets: ["FaultyMigrateModule"]),
        .library(name: "FaultyLoadModule", type: .dynamic, targets: ["FaultyLoadModule"]),
        .library(name: "HangingDescribeModule", type: .dynamic, targets: ["HangingDescribeModule"]),
        .library(name: "InjectingNameModule", type: .dynamic, targets: ["InjectingNameModule"]),
        .library(name: "ConstructorModule", type: .dynamic, targets: ["ConstructorModule"]),
        // Time fixtures (ABI 1.3): timers and room ticks on request.
        .library(name: "TimeProbeModule", type: .dynamic, targets: ["TimeProbeModule"]),
        .library(name: "TimeProbeModuleV2", type: .dynamic, targets: ["TimeProbeModuleV2"]),
        .library(name: "TimeProbeNoTimerModule", type: .dynamic, targets: ["TimeProbeNoTimerModule"]),
        .library(name: "ABI12Module", type: .dynamic, targets: ["ABI12Module"]),
        .executable(name: "FaultGuardProbe", targets: ["FaultGuardProbe"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        // Metric families and the Prometheus text format (--metrics-port); see Sources/Engine/Metrics.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // Tests only: round-trip, truncation and corruption properties of the handoff's sections.
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CLibUV",
            pkgConfig: "libuv",
            providers: [.apt(["libuv1-dev"])]
        ),
        // PostgreSQL's client library, for the shared player storage
        // (`--database postgresql://…`). libpq rather than postgres-nio: the
        // engine's storage runs synchronously on libuv's worker threads
        // (as GRDB does), where an event-loop client would add a second
        // runtime, its threads, and minutes to every CI build.
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .target(name: "GameABI"),
        .target(name: "Protocol"),
        // No `moduleSettings` here: HotswapSDK's targets must build without
        // unsafe flags; the game's own targets carry the flag.
        .target(name: "LogicKit", dependencies: ["GameABI", "Protocol"]),
        .target(name: "UVKit", dependencies: ["CLibUV"]),
        // Fault containment: the C trampolines around every module call (see fault_guard.h).
        .target(name: "FaultGuard", dependencies: ["GameABI"]),
        // Engine upgrades: memfd, close_range, environ and the build id; the
        // engine's own stop/upgrade signal handlers; the restore guard (see
        // their headers).
        .target(name: "UpgradeSupport", dependencies: ["CLibUV"]),
        .target(
            name: "HotswapEngine",
            dependencies: [
                "CLibUV", "CLibPQ", "UVKit", "GameABI", "Protocol", "FaultGuard", "UpgradeSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                // scrypt, for players' secrets (Auth/SecretHash.swift).
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            path: "Sources/Engine",
            // The upgrade tests' fault injection (TestKnobs.swift): debug
            // (test) builds only; `make check-release` proves a release
            // build has none.
            swiftSettings: [.define("HOTSWAP_TEST_KNOBS", .when(configuration: .debug))]
        ),
        .executableTarget(name: "Server", dependencies: ["HotswapEngine"]),
        .executableTarget(
            name: "gamectl",
            dependencies: [.product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "tools/gamectl"
        ),
        // The fake host (an in-memory state table) game developers unit-test modules with.
        .target(name: "HotswapTesting", dependencies: ["GameABI", "LogicKit"]),
        // The default game: its logic (Gems, linked into tests on the fake
        // host) and the module that exports it (GameLogic, libGameLogic.so).
        .target(name: "Gems", dependencies: ["GameABI", "LogicKit", "Protocol"], path: "Sources/Games/Gems",
                swiftSettings: moduleSettings),
        .target(name: "GameLogic", dependencies: ["GameABI", "Gems", "LogicKit"], swiftSettings: moduleSettings),
        // Light cycles: the game (linked by its unit tests too) and its
        // module, which holds only the exported C symbols.
        .target(name: "CyclesGame", dependencies: ["GameABI", "LogicKit", "Protocol"], path: "Sources/Games/Cycles/Game",
                swiftSettings: moduleSettings),
        .target(name: "Cycles", dependencies: ["CyclesGame", "GameABI", "LogicKit"], path: "Sources/Games/Cycles/Module",
                swiftSettings: moduleSettings),
        // Its rules, and the game on the fake host (no server).
        .testTarget(name: "CyclesTests", dependencies: ["CyclesGame", "HotswapTesting", "LogicKit", "GameABI"]),
        .target(name: "GameLogicV2", dependencies: ["GameABI", "LogicKit", "Protocol"], path: "Tests/Fixtures/GameLogicV2",
                swiftSettings: moduleSettings),
        .target(name: "GameLogicV3", dependencies: ["GameABI"], path: "Tests/Fixtures/GameLogicV3"),
        .target(name: "WrongABIModule", dependencies: ["GameABI"], path: "Tests/Fixtures/WrongABIModule"),
        .target(name: "NoHandleModule", dependencies: ["GameABI"], path: "Tests/Fixtures/NoHandleModule"),
        .target(name: "RetypeWithoutMigrateModule", dependencies: ["GameABI"],
                path: "Tests/Fixtures/RetypeWithoutMigrateModule"),
        .target(name: "FailingMigrateModule", dependencies: ["GameABI"], path: "Tests/Fixtures/FailingMigrateModule"),
        .target(name: "FailingLoadModule", dependencies: ["GameABI"], path: "Tests/Fixtures/FailingLoadModule"),
        .target(name: "BadCallsModule", dependencies: ["GameABI"], path: "Tests/Fixtures/BadCallsModule"),
        .target(name: "HookProbeModule", dependencies: ["GameABI"], path: "Tests/Fixtures/HookProbeModule"),
        .target(name: "PlayerFieldsModule", dependencies: ["GameABI"], path: "Tests/Fixtures/PlayerFieldsModule"),
        .target(name: "SlowRetypeModule", dependencies: ["GameABI"], path: "Tests/Fixtures/SlowRetypeModule"),
        .target(name: "FaultyABIVersionModule", dependencies: ["GameABI"], path: "Tests/Fixtures/FaultyABIVersionModule"),
        .target(name: "MigrateDownModule", dependencies: ["GameABI"], path: "Tests/Fixtures/MigrateDownModule"),
        .target(name: "RetypeNoDownModule", dependencies: ["GameABI"], path: "Tests/Fixtures/RetypeNoDownModule"),
        .target(name: "FaultyModule", dependencies: ["GameABI"], path: "Tests/Fixtures/FaultyModule"),
        .target(name: "FaultySwiftModule", dependencies: ["GameABI", "LogicKit", "Protocol"],
                path: "Tests/Fixtures/FaultySwiftModule", swiftSettings: moduleSettings),
        .target(name: "FaultyMigrateModule", dependencies: ["GameABI"], path: "Tests/Fixtures/FaultyMigrateModule"),
        .target(name: "FaultyLoadModule", dependencies: ["GameABI"], path: "Tests/Fixtures/FaultyLoadModule"),
        .target(name: "HangingDescribeModule", dependencies: ["GameABI"], path: "Tests/Fixtures/HangingDescribeModule"),
        .target(name: "InjectingNameModule", dependencies: ["GameABI"], path: "Tests/Fixtures/InjectingNameModule"),
        .target(name: "ConstructorModule", dependencies: ["GameABI"], path: "Tests/Fixtures/ConstructorModule"),
        .target(name: "TimeProbeModule", dependencies: ["GameABI"], path: "Tests/Fixtures/TimeProbeModule"),
        .target(name: "TimeProbeModuleV2", dependencies: ["GameABI"], path: "Tests/Fixtures/TimeProbeModuleV2"),
        .target(name: "TimeProbeNoTimerModule", dependencies: ["GameABI"], path: "Tests/Fixtures/TimeProbeNoTimerModule"),
        .target(name: "ABI12Module", dependencies: ["GameABI"], path: "Tests/Fixtures/ABI12Module"),
        // Runs the fault guard against the faulty fixtures in its own process
        // (Tests/ServerTests/FaultGuardTests.swift drives it).
        .target(name: "FaultGuardProbeSupport", dependencies: ["FaultGuard", "GameABI"],
                path: "Tests/FaultGuardProbeSupport"),
        .executableTarget(name: "FaultGuardProbe", dependencies: ["FaultGuard", "FaultGuardProbeSupport", "GameABI"],
                          path: "Tests/FaultGuardProbe"),
        .target(
            name: "LoadTestCore",
            dependencies: ["CLibUV", "UVKit", "Protocol", .product(name: "Histogram", package: "hdrhistogram-swift")],
            path: "tools/loadtest/Core"
        ),
        .executableTarget(
            name: "loadtest",
            dependencies: ["LoadTestCore", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "tools/loadtest/Main"
        ),
        .testTarget(name: "LoadTestTests", dependencies: ["LoadTestCore"]),
        // What a metric costs per request, library against plain counters (docs/BENCHMARKS.md).
        .executableTarget(
            name: "metrics-cost",
            dependencies: [
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            path: "tools/metrics-cost"
        ),
        // The fuzzer's checks, shared by the fuzzer and the corpus replay in ProtocolTests.
        .target(name: "ProtocolChecks", dependencies: ["Protocol"], path: "Tests/Fuzz/ProtocolChecks"),
        .target(name: "FuzzDriver", path: "Tests/Fuzz/FuzzDriver"),
        .executableTarget(name: "ProtocolFuzzer", dependencies: ["Protocol", "ProtocolChecks", "FuzzDriver"],
                          path: "Tests/Fuzz/ProtocolFuzzer"),
        .executableTarget(name: "EngineFuzzer", dependencies: ["HotswapEngine", "FuzzDriver"], path: "Tests/Fuzz/EngineFuzzer"),
        .testTarget(name: "HotswapTestingTests", dependencies: ["HotswapTesting", "GameABI"]),
        // The default game's rules on the fake host: no server, no sockets.
        .testTarget(name: "GemsTests", dependencies: ["Gems", "HotswapTesting", "LogicKit", "GameABI"]),
        // The SDK's parts (fields, verbs, refusals, lines, timers, migrations) on the fake host.
        .testTarget(name: "LogicKitTests", dependencies: ["HotswapTesting", "LogicKit", "GameABI"],
                    swiftSettings: moduleSettings),
        .testTarget(name: "ProtocolTests", dependencies: ["Protocol", "ProtocolChecks"]),
        .testTarget(name: "ServerTests", dependencies: [
            "HotswapEngine", "GameABI", "UVKit", "CLibUV",
            .product(name: "PropertyBased", package: "swift-property-based"),
            // Signed login tokens made the way a studio's login service would.
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
    ]
)

// Games made in this repository by `make new-game NAME=...` are appended
// below (tools/new-game.sh).
