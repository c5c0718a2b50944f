import Foundation
import Testing

/// The engine refuses modules it cannot trust, at start-up, with the reason.
@Suite struct ModuleLoadingTests {
    @Test func missingModuleIsRefused() throws {
        let result = try runServerExpectingExit(["--module", "/nonexistent/libNothing.so"])
        #expect(result.status != 0)
        #expect(result.log.contains("module not found: /nonexistent/libNothing.so"))
        #expect(!result.log.contains("listening on"))
    }

    @Test func moduleWithWrongABIVersionIsRefused() throws {
        let path = Products.library("WrongABIModule").path
        let result = try runServerExpectingExit(["--module", path])
        #expect(result.status != 0)
        #expect(result.log.contains("was built for ABI 2.0, this engine speaks ABI 1."))
        #expect(!result.log.contains("listening on"))
    }

    /// Module code the start-up load runs (hotswap_abi_version, then
    /// hotswap_describe) runs first in the probe process, and then, in the
    /// server, under the guard as a reload's does (`--probe-timeout 0`
    /// leaves only the guard): a crash or a hang there refuses the start
    /// with the reason, not a crash or a start frozen forever.
    @Test(arguments: [
        ("FaultyABIVersionModule", "5000", "it crashed (SIGILL) in hotswap_abi_version in a probe process"),
        ("HangingDescribeModule", "1000", "it did not finish loading within 1000 ms (--probe-timeout) in a probe process, stuck in hotswap_describe; the probe was killed"),
        ("FaultyABIVersionModule", "0", "hotswap_abi_version crashed (SIGILL)"),
        ("HangingDescribeModule", "0", "hotswap_describe crashed (timeout)"),
    ])
    func aModuleThatCrashesOrHangsAtStartIsRefusedWithTheReason(module: String, probeTimeout: String, reason: String) throws {
        let result = try runServerExpectingExit(["--module", Products.library(module).path, "--probe-timeout", probeTimeout])
        #expect(result.status == 2)
        #expect(result.log.contains(reason), "\(result.log)")
        #expect(!result.log.contains("listening on"))
    }

    @Test func fileThatIsNotALibraryIsRefused() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("not-a-module-\(UUID()).so")
        try Data("this is not an ELF file".utf8).write(to: path)
        defer { try? FileManager.default.removeItem(at: path) }
        let result = try runServerExpectingExit(["--module", path.path])
        #expect(result.status != 0)
        #expect(result.log.contains("cannot load module \(path.path)"))
    }

    @Test func defaultModuleIsFoundBesideTheServerAndLoadedFromAPrivateCopy() throws {
        let server = try TestServer()
        #expect(server.logContains("loaded module gems 1.2.0 from \(Products.library("GameLogic").path)"))
        let client = try server.connect()
        #expect(try client.call("PING") == "+PONG")
        // The build output itself is never mapped: a private copy is.
        let maps = try procFile("/proc/\(server.process.processIdentifier)/maps")
        #expect(maps.contains("hotswap-modules-"))
        #expect(!maps.contains(Products.library("GameLogic").path))
    }
}
