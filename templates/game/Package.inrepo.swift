
// Game "__name__" (make new-game): `make module NAME=__name__` builds .build/release/lib__name__.so.
package.products.append(.library(name: "__name__", type: .dynamic, targets: ["__Type__Module"]))
package.targets += [
    .target(name: "__Type__Game", dependencies: ["GameABI", "LogicKit", "Protocol"],
            path: "Sources/Games/__Type__/Game", swiftSettings: moduleSettings),
    .target(name: "__Type__Module", dependencies: ["__Type__Game", "GameABI", "LogicKit"],
            path: "Sources/Games/__Type__/Module", swiftSettings: moduleSettings),
    // Its tests run the game on the fake host (HotswapTesting): no server.
    .testTarget(name: "__Type__Tests", dependencies: ["__Type__Game", "LogicKit", "HotswapTesting"],
                path: "Tests/__Type__Tests"),
]
