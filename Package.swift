// swift-tools-version: 6.1
//
// Hotswap: a multiplayer TCP game server whose game logic is a dynamic
// library that can be replaced while players stay connected.
//
//   Protocol   pure wire format (framing, tokenizing, encoding), no I/O
//   GameABI    the C header both sides share at run time: the only contract
//   Server     the engine (`gameserver`): libuv loop, arenas, state store
//   LogicKit   Swift conveniences over the C state table, linked into modules
//   GameLogic  the default game, a `.dynamic` library loaded by the engine
import PackageDescription

let package = Package(
    name: "Hotswap",
    products: [
        .executable(name: "gameserver", targets: ["Server"]),
        .library(name: "GameLogic", type: .dynamic, targets: ["GameLogic"]),
        // Test fixture: a module that exports the wrong ABI version.
        .library(name: "WrongABIModule", type: .dynamic, targets: ["WrongABIModule"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CLibUV",
            pkgConfig: "libuv",
            providers: [.apt(["libuv1-dev"])]
        ),
        .target(name: "GameABI"),
        .target(name: "Protocol"),
        .target(name: "LogicKit", dependencies: ["GameABI", "Protocol"]),
        .executableTarget(
            name: "Server",
            dependencies: [
                "CLibUV", "GameABI", "Protocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "GameLogic", dependencies: ["GameABI", "LogicKit", "Protocol"]),
        .target(name: "WrongABIModule", dependencies: ["GameABI"], path: "Tests/Fixtures/WrongABIModule"),
        .testTarget(name: "ProtocolTests", dependencies: ["Protocol"]),
        .testTarget(name: "ServerTests", dependencies: ["Server", "GameABI"]),
    ]
)
