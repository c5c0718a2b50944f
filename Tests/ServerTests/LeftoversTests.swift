import Foundation
import Testing

/// Nothing a server wrote to $TMPDIR outlives it: its private module
/// copies go at exit, and those of a server that was killed (kill -9, a
/// crash) go when the next one starts.
@Suite struct LeftoversTests {
    private func privateDirectories(in root: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: root.path).filter { $0.hasPrefix("hotswap-modules-") }.sorted()
    }

    @Test func aKilledServersModuleCopiesAreRemovedByTheNextServer() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("tmpdir-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        // Not ours to judge: no lock file says who owns it.
        let foreign = root.appendingPathComponent("hotswap-modules-foreign")
        try FileManager.default.createDirectory(at: foreign, withIntermediateDirectories: true)

        let killed = try TestServer(environment: ["TMPDIR": root.path])
        let left = try privateDirectories(in: root).filter { $0 != "hotswap-modules-foreign" }
        #expect(left.count == 1, "\(left)")
        kill(killed.process.processIdentifier, SIGKILL)
        killed.process.waitUntilExit()
        #expect(try privateDirectories(in: root).count == 2)

        let next = try TestServer(environment: ["TMPDIR": root.path])
        #expect(next.logContains("removed \(root.path)/\(left[0]): module copies of a server that ended without cleaning up"),
                "\(next.log)")
        let now = try privateDirectories(in: root)
        #expect(!now.contains(left[0]))
        #expect(now.contains("hotswap-modules-foreign"))
        #expect(now.count == 2, "\(now)")
        // A live server's directory is never taken for a stale one.
        let third = try TestServer(environment: ["TMPDIR": root.path])
        #expect(try privateDirectories(in: root).count == 3)
        #expect(third.stop() == 0)
        #expect(next.stop() == 0)
        #expect(try privateDirectories(in: root) == ["hotswap-modules-foreign"])
    }
}
