import Glibc

/// Who this process is to a shared database (`SharedPlayerStorage.owner`):
/// `--server-name`, the pid and 64 random bits, so two processes never
/// share an identity (not even one restarted under a reused pid, whose
/// predecessor's leases must expire, not pass to it).
///
/// An engine upgrade is the same process serving the same players, so it
/// keeps the identity and with it every lease: the old engine passes it to
/// the exec (and to its fallback) in `HOTSWAP_LEASE_OWNER`, which `main`
/// reads and removes before any thread exists, as systemd's variables are
/// (`SystemdNotifier`). No child the engine or a module starts inherits it.
enum LeaseOwner {
    static let variable = "HOTSWAP_LEASE_OWNER"

    /// What the previous engine of this process handed on, read once.
    nonisolated(unsafe) private static var inherited: String?
    nonisolated(unsafe) private static var current: String?

    /// First thing in `main` (`unsetenv` is not thread-safe).
    static func detachEnvironment() {
        if let value = getenv(variable), value.pointee != 0 { inherited = String(cString: value) }
        unsetenv(variable)
    }

    /// The identity of this process: the inherited one, or a new one.
    static func identity(serverName: String) -> String {
        if let current { return current }
        let random = UInt64.random(in: 1...UInt64.max)
        let made = inherited ?? "\(serverName)/\(getpid())/\(String(random, radix: 16))"
        current = made
        return made
    }

    /// What an upgrade's execve (and its fallback) adds to the environment.
    static var environmentForNextEngine: [String] { current.map { ["\(variable)=\($0)"] } ?? [] }

    /// The machine's host name: the default `--server-name` (on Agones, the
    /// GameServer's pod name).
    static var hostName: String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "hotswap" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// How this server takes part in a shared database: `--server-name` and
/// `--lease-seconds`, and the process's identity (`LeaseOwner`).
struct SharedStorageSettings: Sendable {
    var serverName: String
    var leaseSeconds: Int

    func open(url: String) throws(StorageError) -> PostgresStorage {
        try PostgresStorage.open(url: url, owner: LeaseOwner.identity(serverName: serverName), serverName: serverName,
                                 leaseSeconds: leaseSeconds)
    }

    /// Without connecting (an upgraded engine: the database was prepared
    /// by the first engine; the first statement connects, on a worker).
    func openConnectingLater(url: String) -> PostgresStorage {
        PostgresStorage(url: url, owner: LeaseOwner.identity(serverName: serverName), serverName: serverName,
                        leaseSeconds: leaseSeconds, writer: nil, logins: nil)
    }
}
