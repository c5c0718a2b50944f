import Foundation

/// `tools/fake-agones.py`, the fake Agones SDK sidecar, as a process a test
/// owns: on a free port (or one the test chose, for a sidecar that starts
/// after the server), with its request log read back as it grows.
final class FakeAgones: @unchecked Sendable {
    /// One request the sidecar answered (a line of its `--log`).
    struct Request: Decodable, CustomStringConvertible {
        let method: String
        let path: String
        let body: String
        let status: Int
        /// The GameServer's state after the request.
        let state: String
        let time: Double

        var description: String { "\(method) \(path) \(body) -> \(status) (\(state))" }

        /// The JSON body's `key` and `value` (labels and annotations).
        var keyValue: (key: String, value: String)? {
            guard let object = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
                  let key = object["key"] as? String, let value = object["value"] as? String else { return nil }
            return (key, value)
        }
    }

    static var script: URL { Products.packageRoot.appendingPathComponent("tools/fake-agones.py") }
    static var conformance: URL { Products.packageRoot.appendingPathComponent("tools/agones-conformance.py") }

    let process = Process()
    private let directory: URL
    private(set) var port = 0
    var logFile: URL { directory.appendingPathComponent("requests.jsonl") }

    /// Starts the sidecar on `port` (0: a free one) and waits until it
    /// listens. `arguments` go to the script (`--unhealthy-after 1`).
    init(port: Int = 0, arguments: [String] = []) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("fake-agones-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let ready = directory.appendingPathComponent("ready.json")
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.script.path, "--port", "\(port)", "--ready-file", ready.path,
                             "--log", logFile.path] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(NotAHang.seconds)
        while Date() < deadline {
            if let data = FileManager.default.contents(atPath: ready.path),
               let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let bound = object["port"] as? Int
            {
                self.port = bound
                return
            }
            if !process.isRunning { break }
            Thread.sleep(forTimeInterval: 0.01)
        }
        stop()
        throw TestFailure("fake-agones.py did not start on port \(port)")
    }

    /// A port nothing listens on now (bound, then closed): for a sidecar
    /// started after the server.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else { throw TestFailure("cannot find a free port: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Every request answered so far, in order.
    var requests: [Request] {
        guard let data = FileManager.default.contents(atPath: logFile.path) else { return [] }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap {
            try? JSONDecoder().decode(Request.self, from: Data($0.utf8))
        }
    }

    /// The requests once `condition` holds for them; throws after
    /// `seconds` with what came.
    @discardableResult
    func waitFor(_ what: String, within seconds: TimeInterval = NotAHang.seconds,
                 _ condition: ([Request]) -> Bool) throws -> [Request]
    {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            let seen = requests
            if condition(seen) { return seen }
            if Date() > deadline {
                throw TestFailure("fake Agones: no \(what) within \(seconds) s; requests:\n"
                                  + seen.map(\.description).joined(separator: "\n"))
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
    }

    /// The GameServer as `GET /gameserver` returns it.
    func gameServer() throws -> [String: Any] {
        let response = try HTTPClient(port: port).get("/gameserver", close: true)
        guard response.status == 200,
              let object = try JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any]
        else { throw TestFailure("GET /gameserver: \(response.status) \(response.body)") }
        return object
    }

    /// The labels (or annotations) the SDK set, without the `agones.dev/sdk-` prefix.
    func metadata(_ kind: String = "labels") throws -> [String: String] {
        let meta = try gameServer()["object_meta"] as? [String: Any]
        let all = meta?[kind] as? [String: String] ?? [:]
        var found: [String: String] = [:]
        for (key, value) in all where key.hasPrefix("agones.dev/sdk-") {
            found[String(key.dropFirst("agones.dev/sdk-".count))] = value
        }
        return found
    }

    /// A beta Counter (`GET /v1beta1/counters/{name}`).
    func counter(_ name: String = "rooms") throws -> (count: Int, capacity: Int) {
        let object = try beta("counters", name)
        return (Int(object["count"] as? String ?? "") ?? -1, Int(object["capacity"] as? String ?? "") ?? -1)
    }

    /// A beta List (`GET /v1beta1/lists/{name}`): its values in order.
    func list(_ name: String = "players") throws -> (values: [String], capacity: Int) {
        let object = try beta("lists", name)
        return (object["values"] as? [String] ?? [], Int(object["capacity"] as? String ?? "") ?? -1)
    }

    private func beta(_ kind: String, _ name: String) throws -> [String: Any] {
        let response = try HTTPClient(port: port).get("/v1beta1/\(kind)/\(name)", close: true)
        guard response.status == 200,
              let object = try JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any]
        else { throw TestFailure("GET /v1beta1/\(kind)/\(name): \(response.status) \(response.body)") }
        return object
    }

    /// The JSON body of a request the sidecar answered.
    static func json(_ request: Request) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(request.body.utf8)) as? [String: Any]) ?? [:]
    }

    func state() throws -> String { ((try gameServer()["status"] as? [String: Any])?["state"] as? String) ?? "" }

    /// SIGTERM, then SIGKILL after a grace: a stuck fake must not hang
    /// the suite.
    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }
}
