import Logging
import Testing
@testable import HotswapEngine

/// The start-up's configuration, built from a first engine's command line
/// (a resumed engine's comes over in the handoff: the upgrade tests run it).
@Suite struct BootstrapTests {
    private let logger = Logger(label: "test")

    private func configuration(_ arguments: [String]) throws -> EngineConfiguration {
        try Bootstrap.configuration(try GameServerCommand.parse(arguments), logger: logger)
    }

    @Test func aFirstEngineTakesEverythingFromItsArguments() throws {
        let config = try configuration(["--port", "0", "--admin-port", "0", "--metrics-port", "9100", "--module", "/m/lib.so",
                                        "--database", ":memory:", "--ready-file", "/tmp/r.json", "--watch"])
        #expect(config.start is FreshStart)
        #expect(config.modulePath == "/m/lib.so" && config.databasePath == nil && config.watch)
        #expect(config.game.port == 0 && config.admin.host == "127.0.0.1" && config.metricsPort == 9100)
        #expect(config.readyFile == "/tmp/r.json")
        guard case .unresolved("/m", "modules directory") = config.modulesDirectory else {
            Issue.record("the modules directory defaults to the module's, resolved later")
            return
        }
        #expect(try configuration(["--database", "x.sqlite"]).databasePath == "x.sqlite")
    }

    @Test func tokenRulesAreCheckedBeforeAnythingStarts() throws {
        #expect(throws: StartRefused.self) { try configuration(["--admin-token", "short"]) }
        #expect(throws: StartRefused.self) { try configuration(["--admin-host", "0.0.0.0", "--admin-token", ""]) }
        let config = try configuration(["--admin-host", "0.0.0.0", "--admin-token", "0123456789abcdef"])
        #expect(config.adminToken == Array("0123456789abcdef".utf8))
    }

    @Test func aDirectoryThatDoesNotExistIsRefusedWhenResolved() throws {
        #expect(try ResolvedLater.resolved("/kept").resolve() == "/kept")
        #expect(throws: StartRefused.self) { try ResolvedLater.unresolved("/no/such/dir", what: "modules directory").resolve() }
        #expect(try ResolvedLater.unresolved("/", what: "root").resolve() == "/")
    }
}
