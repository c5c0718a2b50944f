import Foundation
import Testing

/// The operator's tools against a real server: gamectl and --watch.
@Suite struct OperatorToolsTests {
    private func gamectl(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try runTool("gamectl", arguments)
    }

    @Test func gamectlReportsAndExitsNonZeroOnErrors() throws {
        let server = try TestServer(arguments: ["--admin-token", "t0k-t0k-t0k-t0k-t0k"])
        let port = ["--port", "\(server.adminPort)", "--token", "t0k-t0k-t0k-t0k-t0k"]
        let status = try gamectl(["status"] + port)
        #expect(status.status == 0)
        #expect(status.output.hasPrefix("+STATUS module=gems version=1.2.0"))

        let refused = try gamectl(["rollback"] + port)
        #expect(refused.status != 0)
        #expect(refused.output.contains("no previous module"))

        let reload = try gamectl(["reload", Products.library("GameLogicV2").path] + port)
        #expect(reload.status == 0)
        #expect(reload.output.hasPrefix("+OK gems 1.2.0 -> gems 2.0.0"))
        #expect(try gamectl(["rollback"] + port).status == 0)
        let modules = try gamectl(["modules"] + port)
        #expect(modules.status == 0)
        #expect(modules.output.contains("gems@1.2.0:") && modules.output.contains("gems@2.0.0:"))

        let wrongToken = try gamectl(["status", "--port", "\(server.adminPort)", "--token", "nope"])
        #expect(wrongToken.status != 0)
        #expect(wrongToken.output.contains("AUTH_FAILED"))
    }

    @Test func gamectlUpgradesAndReportsARefusal() throws {
        let builds = try EngineBuilds()
        let next = try builds.engine("next")
        let server = try TestServer(arguments: builds.serverArguments)
        let player = try server.connect()
        #expect(try player.call("LOGIN alice").hasPrefix("+WELCOME"))
        let port = ["--port", "\(server.adminPort)"]
        let upgrade = try gamectl(["upgrade", next] + port)
        #expect(upgrade.status == 0, "\(upgrade.output)")
        #expect(upgrade.output.contains(" -> next held_ms="))
        #expect(upgrade.output.hasSuffix("sessions=1\n"))
        let refused = try gamectl(["upgrade", "missing"] + port)
        #expect(refused.status != 0)
        #expect(refused.output.contains("UPGRADE_FAILED engine not found"))
        #expect(try player.call("PING") == "+PONG")
    }

    @Test func watchReloadsANewBuildAndRetriesAHalfWrittenOne() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("watch-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let module = directory.appendingPathComponent("libGameLogic.so")
        try FileManager.default.copyItem(at: Products.library("GameLogic"), to: module)

        let server = try TestServer(arguments: ["--module", module.path, "--watch"])
        let player = try server.connect()
        #expect(try player.call("PING") == "+PONG")

        // A build that lands in two writes: the first half alone is not a
        // loadable library, so the watcher must wait and retry.
        let v2 = try Data(contentsOf: Products.library("GameLogicV2"))
        let handle = try FileHandle(forWritingTo: module)
        try handle.truncate(atOffset: 0)
        try handle.write(contentsOf: v2.prefix(v2.count / 2))
        #expect(server.logContains("watch: not loadable yet", within: 10))
        try handle.write(contentsOf: v2.suffix(from: v2.count / 2))
        try handle.close()

        // The watcher reloads by itself: wait until the player sees v2.
        #expect(try waitUntil(15) { try player.call("PING") == "+PONG v2" })
        #expect(server.logContains("admin: WATCH \(module.path) done: gems 1.2.0 -> gems 2.0.0"))
    }
}
