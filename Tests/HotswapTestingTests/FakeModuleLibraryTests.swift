import Foundation
import GameABI
import HotswapTesting
import Testing

@Suite struct FakeModuleLibraryTests {
    @Test func aBuiltModuleRunsInTheFakeHost() throws {
        let path = builtLibrary("TimeProbeModule")
        try #require(FileManager.default.fileExists(atPath: path), "build the package first: \(path)")
        let module = try FakeModule.load(libraryAt: path)
        #expect(module.timer != nil && module.tick != nil && module.migrate == nil)
        let host = try FakeHost(module)
        let alice = host.connect(), bob = host.connect()
        #expect(host.send("PING", from: alice) == "+PONG")
        #expect(host.send("TIMER me 50 0 ping hello", from: alice).hasPrefix("+TIMER "))
        host.advance(milliseconds: 50)
        #expect(host.events(of: alice) == [">TIMER v1 ping hello late=0 fired=1"])
        #expect(host.send("JOIN arena", from: alice) == "+JOINED")
        #expect(host.send("JOIN arena", from: bob) == "+JOINED")
        #expect(host.send("TICK 20 echo", from: alice) == "+OK")
        host.advance(milliseconds: 100)
        #expect(host.events(of: bob) == [">TICK v1 n=1 skipped=0 step=50", ">TICK v1 n=2 skipped=0 step=50"])
        #expect(host.violations.isEmpty)
    }

    @Test func aMissingLibraryIsAnError() {
        #expect(throws: FakeModuleError.self) { try FakeModule.load(libraryAt: "/nonexistent/libNothing.so") }
    }
}
