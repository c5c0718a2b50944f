// swift-tools-version: 6.2
//
// __name__: a Hotswap game module (made by Hotswap's `make new-game`).
//   swift build -c release        → .build/release/lib__name__.so
//   gameserver --module .build/release/lib__name__.so
//   swift test                    → its tests, on Hotswap's fake host
import PackageDescription

/// The module build rule: game code is built without run-time exclusivity
/// tracking. The engine contains a crash in module code by jumping out of
/// the call; with tracking on, that leaves the thread's access list
/// pointing into dead stack for the engine's next access (Hotswap's
/// docs/WRITING-GAMES.md, "The build rule"). Allowed here because this is
/// the root package; the SDK needs no flag of its own.
let moduleSettings: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"])]

let package = Package(
    name: "__name__",
    products: [.library(name: "__name__", type: .dynamic, targets: ["__Type__Module"])],
    dependencies: [.package(url: "__HOTSWAP_URL__", from: "__HOTSWAP_VERSION__")],
    targets: [
        .target(name: "__Type__Game", dependencies: [.product(name: "HotswapSDK", package: "__HOTSWAP_PACKAGE__")],
                path: "Sources/Game", swiftSettings: moduleSettings),
        .target(name: "__Type__Module",
                dependencies: ["__Type__Game", .product(name: "HotswapSDK", package: "__HOTSWAP_PACKAGE__")],
                path: "Sources/Module", swiftSettings: moduleSettings),
        // The tests run the game on Hotswap's fake host (`swift test`): no server.
        .testTarget(name: "__Type__Tests",
                    dependencies: ["__Type__Game", .product(name: "HotswapSDK", package: "__HOTSWAP_PACKAGE__"),
                                   .product(name: "HotswapTesting", package: "__HOTSWAP_PACKAGE__")],
                    path: "Tests/__Type__Tests"),
    ]
)
