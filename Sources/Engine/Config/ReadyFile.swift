import Glibc

/// `--ready-file PATH`: once every port is bound, the server writes one JSON
/// object there, so that tests, tools and supervisors learn the bound ports
/// (and the pid) without reading the log:
///
///     {"pid":4242,"game":{"host":"127.0.0.1","port":40001},"admin":{"host":"127.0.0.1","port":40002}}
///
/// With `--metrics-port`, a `"metrics":{"host":…,"port":…}` member follows.
///
/// It is written to a temporary name and renamed, so a reader never sees
/// half of it. Written at start-up, before the loop serves anyone, and
/// again by every engine an upgrade resumes (same pid and ports; `engine`
/// and `upgrades` say which engine serves now):
///
///     {"pid":4242,"game":{...},"admin":{...},"engine":"1.1.0+eaaee0c814a3","upgrades":1}
enum ReadyFile {
    struct Endpoint {
        let host: String
        let port: Int
    }

    static func json(pid: Int32, game: Endpoint, admin: Endpoint, metrics: Endpoint? = nil,
                     engine: String = EngineIdentity.version, upgrades: Int = 0) -> String
    {
        func endpoint(_ e: Endpoint) -> String { "{\"host\":\(JSON.string(e.host)),\"port\":\(e.port)}" }
        let metricsMember = metrics.map { ",\"metrics\":\(endpoint($0))" } ?? ""
        return "{\"pid\":\(pid),\"game\":\(endpoint(game)),\"admin\":\(endpoint(admin))\(metricsMember),"
            + "\"engine\":\(JSON.string(engine)),\"upgrades\":\(upgrades)}\n"
    }

    /// Writes `text` to `path` atomically; returns the error text on failure.
    static func write(_ text: String, to path: String) -> String? {
        let temporary = "\(path).tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return "\(temporary): \(String(cString: strerror(errno)))" }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard written == bytes.count else {
            unlink(temporary)
            return "\(temporary): short write"
        }
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            return "\(path): \(String(cString: strerror(errno)))"
        }
        return nil
    }
}
