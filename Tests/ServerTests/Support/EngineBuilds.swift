import Foundation

/// A temporary `--engines-dir` holding engine builds for UPGRADE: real
/// files, as an operator would install them. A "new engine" is a small
/// script that runs the package's real `gameserver` under another name
/// (`HOTSWAP_ENGINE_VERSION`): the pid stays the same through the script's
/// `exec`, and the reply shows which engine serves. Candidates that must
/// be refused are files too: a script that prints the wrong format, one
/// that crashes, one that hangs, a copy of the server that is not
/// executable.
final class EngineBuilds {
    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("engines-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    /// The flags that let a TestServer take builds from here.
    var serverArguments: [String] { ["--engines-dir", directory.path] }

    /// A script `name` with `body` after the shebang; returns its path.
    @discardableResult
    func script(_ name: String, _ body: String, executable: Bool = true) throws -> String {
        let url = directory.appendingPathComponent(name)
        try Data("#!/bin/sh\n\(body)\n".utf8).write(to: url)
        try FileManager.default.setAttributes([.posixPermissions: executable ? 0o755 : 0o644], ofItemAtPath: url.path)
        return url.path
    }

    /// The real server, named `version` in replies and STATUS.
    func engine(_ version: String, name: String? = nil) throws -> String {
        try script(name ?? "engine-\(version)", "HOTSWAP_ENGINE_VERSION='\(version)' exec '\(Products.server.path)' \"$@\"")
    }

    /// A script that passes the check claiming to read formats 1-99, then runs the
    /// real server reading another handoff format: it cannot restore and
    /// must hand everything back to the engine before it.
    func engineThatCannotRestore() throws -> String {
        try script("engine-cannot-restore", """
            if [ "$1" = --check-upgrade ]; then echo "hotswap-engine liar handoff 1-99"; exit 0; fi
            HOTSWAP_ENGINE_VERSION=liar HOTSWAP_TEST_HANDOFF_FORMAT=99 exec '\(Products.server.path)' "$@"
            """)
    }

    /// A byte-for-byte copy of the server without the execute bit.
    func nonExecutableCopy() throws -> String {
        let url = directory.appendingPathComponent("gameserver-not-executable")
        try FileManager.default.copyItem(at: Products.server, to: url)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: url.path)
        return url.path
    }
}

extension TestServer {
    /// The server's resident memory, in KiB.
    var residentKiB: Int {
        get throws {
            let status = try procFile("/proc/\(process.processIdentifier)/status")
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
                let value = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
            else { throw TestFailure("no VmRSS in /proc status") }
            return value
        }
    }
}
