import Foundation
import Testing

/// Modules are probed before they enter the process: a candidate is loaded
/// first in a short-lived child (`gameserver --probe-module`), so a module
/// whose ELF constructor crashes, aborts, exits or hangs is refused with
/// that reason while the players play on; a file that is too large or built
/// for another processor is refused before anything is copied.
@Suite struct ModuleProbeTests {
    /// A folder holding the constructor fixture under `name` (its file name
    /// picks what the constructor does: see constructor.c).
    private func candidate(_ name: String) throws -> (directory: URL, path: String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("probe-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let target = directory.appendingPathComponent(name)
        try FileManager.default.copyItem(at: Products.library("ConstructorModule"), to: target)
        return (directory, target.path)
    }

    @Test(arguments: [
        ("ctor-segv.so", "it crashed (SIGSEGV) in its ELF constructors (dlopen) in a probe process; it said: ctor: segv"),
        ("ctor-abort.so", "it crashed (SIGABRT) in its ELF constructors (dlopen) in a probe process; it said: ctor: abort"),
        ("ctor-exit.so", "it ended the probe process (exit status 0) in its ELF constructors (dlopen); it said: ctor: exit"),
        ("ctor-hang.so", "it did not finish loading within 1000 ms (--probe-timeout) in a probe process, stuck in its ELF constructors (dlopen); the probe was killed"),
    ])
    func aConstructorThatFailsIsRefusedAndThePlayersPlayOn(file: String, reason: String) throws {
        let (directory, path) = try candidate(file)
        defer { try? FileManager.default.removeItem(at: directory) }
        let server = try TestServer(arguments: ["--modules-dir", directory.path, "--probe-timeout", "1000"])
        let player = try server.connect()
        #expect(try player.call("LOGIN alice").hasPrefix("+WELCOME"))
        let admin = try server.connectAdmin()
        let started = Date()
        let reply = try admin.call("RELOAD \(path)")
        #expect(reply == "-ERR RELOAD_FAILED cannot load module \(path): \(reason)", "\(reply)")
        #expect(Date().timeIntervalSince(started) < NotAHang.seconds)
        #expect(try player.call("PING") == "+PONG")
        let status = try server.statusFields()
        #expect(status["module"] == "gems")
        #expect(status["images"] == "1", "the refused module was mapped into the server")
        // The game and reloads go on: the same fixture under a tame name.
        let fine = directory.appendingPathComponent("ctor-fine.so").path
        try FileManager.default.copyItem(atPath: path, toPath: fine)
        #expect(try admin.call("RELOAD \(fine)").hasPrefix("+OK gems 1.2.0 -> ctor 1.0.0"))
        #expect(try player.call("ANYTHING") == "+OK")
    }

    /// What a module's constructor starts in the probe ends with the probe
    /// (its process group is killed); the server's own load of it is the
    /// server's business.
    @Test func whatAConstructorStartsInTheProbeEndsWithIt() throws {
        let (directory, path) = try candidate("ctor-spawn.so")
        defer { try? FileManager.default.removeItem(at: directory) }
        let pidFile = directory.appendingPathComponent("pids")
        let server = try TestServer(arguments: ["--modules-dir", directory.path],
                                    environment: ["CTOR_SPAWN_PIDFILE": pidFile.path])
        let admin = try server.connectAdmin()
        #expect(try admin.call("RELOAD \(path)").hasPrefix("+OK gems 1.2.0 -> ctor 1.0.0"))
        let pids = try String(contentsOf: pidFile, encoding: .utf8).split(separator: "\n").compactMap { pid_t($0) }
        try #require(pids.count == 2, "\(pids)")
        defer { kill(pids[1], SIGKILL) }  // the server's own, started by its dlopen
        func running(_ pid: pid_t) -> Bool {
            guard kill(pid, 0) == 0 else { return false }
            return (try? procFile("/proc/\(pid)/stat"))?.split(separator: " ").dropFirst(2).first != "Z"
        }
        #expect(waitUntil(NotAHang.seconds) { !running(pids[0]) }, "the probe's child \(pids[0]) outlived it")
    }

    @Test func aHangingDescribeIsRefusedByTheProbeNotLeftStuck() throws {
        let server = try TestServer(arguments: ["--probe-timeout", "1000"])
        let admin = try server.connectAdmin()
        let path = Products.library("HangingDescribeModule").path
        let reply = try admin.call("RELOAD \(path)")
        #expect(reply.hasPrefix("-ERR RELOAD_FAILED cannot load module \(path): it did not finish loading within 1000 ms"), "\(reply)")
        #expect(reply.hasSuffix("stuck in hotswap_describe; the probe was killed"), "\(reply)")
        // Not stuck: the next reload runs.
        #expect(try admin.call("RELOAD \(Products.library("GameLogicV2").path)").hasPrefix("+OK gems 1.2.0 -> gems 2.0.0"))
    }

    @Test func aServerDoesNotStartOnAModuleWhoseConstructorCrashes() throws {
        let (directory, path) = try candidate("ctor-segv.so")
        defer { try? FileManager.default.removeItem(at: directory) }
        let refused = try runServerExpectingExit(["--module", path])
        #expect(refused.status != 0)
        #expect(refused.log.contains("it crashed (SIGSEGV) in its ELF constructors (dlopen) in a probe process"), "\(refused.log)")
    }

    /// An AArch64 build copied to an x86-64 server (or the reverse): named,
    /// instead of dlopen's "No such file or directory".
    @Test func aModuleForAnotherProcessorIsRefusedByName() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("probe-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var bytes = [UInt8](try Data(contentsOf: Products.library("GameLogicV2")))
        #if arch(x86_64)
        let (other, otherName, ours) = (UInt16(EM_AARCH64), "AArch64 (arm64)", "x86-64")
        #else
        let (other, otherName, ours) = (UInt16(EM_X86_64), "x86-64", "AArch64 (arm64)")
        #endif
        bytes[18] = UInt8(other & 0xFF)
        bytes[19] = UInt8(other >> 8)
        let path = directory.appendingPathComponent("foreign.so").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let server = try TestServer(arguments: ["--modules-dir", directory.path])
        let admin = try server.connectAdmin()
        #expect(try admin.call("RELOAD \(path)")
            == "-ERR RELOAD_FAILED cannot load module \(path): built for \(otherName), but this server runs on \(ours)")
    }

    @Test func aFileOverTheSizeCapIsRefusedBeforeItIsCopied() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("probe-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        // A real module padded past the cap (ELF ignores trailing bytes).
        var bytes = try Data(contentsOf: Products.library("GameLogicV2"))
        bytes.append(Data(count: 16 << 20))
        let path = directory.appendingPathComponent("big.so").path
        try bytes.write(to: URL(fileURLWithPath: path))
        let server = try TestServer(arguments: ["--modules-dir", directory.path, "--max-module-bytes", "8388608"])
        let admin = try server.connectAdmin()
        #expect(try admin.call("RELOAD \(path)")
            == "-ERR RELOAD_FAILED module \(path) is \(bytes.count) bytes, over --max-module-bytes 8388608: not copied")
    }

    @Test func aProbeTimeoutNotBelowTheLoadTimeoutIsRefused() throws {
        let refused = try runServerExpectingExit(["--probe-timeout", "10000", "--load-timeout", "10000"])
        #expect(refused.status != 0)
        #expect(refused.log.contains("--probe-timeout (10000) must be below --load-timeout (10000)"), "\(refused.log)")
    }
}
