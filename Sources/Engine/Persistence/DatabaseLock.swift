import Crypto
import Glibc

/// One server per database: two locks, both held on descriptors of their
/// own for the life of the process, and both let go by the kernel when it
/// ends (a crash included).
///
/// - An exclusive `flock` on the database file. Why `flock` and not
///   SQLite's own locking: SQLite's locks are per transaction, so a second
///   server would happily interleave its writes with ours; `PRAGMA
///   locking_mode=EXCLUSIVE` would stop that but would also stop `sqlite3
///   .backup` and every other reader while we run. `flock` locks are
///   independent of SQLite's POSIX record locks (on Linux, for local
///   files), so readers and backups still work. The descriptor is never
///   closed while the database is open: closing any descriptor of the file
///   would drop SQLite's record locks along with it (a POSIX rule). It is
///   also the descriptor `DatabaseFileIdentity` compares the path with.
/// - A *path lock*: a Unix datagram socket bound to an abstract name made
///   from the path (`PathLockName`). A flock follows the file, not the
///   path: once the file is deleted (`rm`, `rm -rf` of its directory) a
///   second server would create a new file at the path, lock that one and
///   serve players from a file that lacks every one the first server holds,
///   while the first writes nowhere. An abstract name is not in the file
///   system, so no `rm` removes it, and a second server checks it before
///   it creates anything. The flock still covers what the name cannot: the
///   same file reached by another path (a bind mount, a hard link), and
///   servers in other network namespaces (abstract names are per
///   namespace: two containers sharing a volume).
///
/// Not a lock file (`<db>.lock`): the `rm` it should survive removes it
/// too. Not a `flock` on the directory: two databases in one directory
/// (the tests' /tmp) would exclude each other, and `rm -rf` removes it.
struct DatabaseLock: Sendable {
    /// The flocked descriptor on the database file.
    let descriptor: Int32
    /// The path lock's socket. nil only in a lock an engine upgrade handed
    /// over as one descriptor (`adopting(path:)` completes it).
    let pathDescriptor: Int32?

    init(descriptor: Int32, pathDescriptor: Int32? = nil) {
        self.descriptor = descriptor
        self.pathDescriptor = pathDescriptor
    }

    /// Every descriptor an engine upgrade hands over, the flock first (an
    /// engine resumed from the handoff adopts the first as the flock).
    var descriptors: [Int32] { [descriptor] + (pathDescriptor.map { [$0] } ?? []) }

    /// Takes the path lock, then opens (creating if needed, mode 0644) and
    /// locks `path`. The path lock comes first: a server refused because
    /// another holds the path (its file deleted) creates no file there.
    static func acquire(path: String) throws(StorageError) -> DatabaseLock {
        let pathLock = try PathLockName(path).bind(path: path)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            let code = errno
            close(pathLock)
            throw StorageError("cannot open database \(path): \(String(cString: strerror(code)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            close(fd)
            close(pathLock)
            if code == EWOULDBLOCK { throw inUse(path) }
            throw StorageError("cannot lock database \(path): \(String(cString: strerror(code)))")
        }
        return DatabaseLock(descriptor: fd, pathDescriptor: pathLock)
    }

    static func inUse(_ path: String) -> StorageError {
        StorageError("database \(path) is in use by another server (one server per database)")
    }

    /// The lock an engine upgrade handed over, with its path lock: the
    /// resumed engine is given the flock's descriptor alone (the first
    /// handed over), and finds the path lock's among the descriptors it
    /// inherited by its bound name. An engine from before the path lock
    /// handed none over: the name is bound now (refused if another server
    /// took it meanwhile).
    func adopting(path: String) throws(StorageError) -> DatabaseLock {
        if pathDescriptor != nil { return self }
        let name = PathLockName(path)
        if let inherited = name.findBound() { return DatabaseLock(descriptor: descriptor, pathDescriptor: inherited) }
        return DatabaseLock(descriptor: descriptor, pathDescriptor: try name.bind(path: path))
    }

    /// Gives both locks up (at exit).
    func release() {
        flock(descriptor, LOCK_UN)
        close(descriptor)
        if let pathDescriptor { close(pathDescriptor) }
    }
}

/// The abstract socket name that stands for a database path:
/// `hotswap-db:` and the SHA-256 of the directory's real path (symlinks
/// and `..` resolved) joined with the file's name, so that every spelling
/// of one path gives one name, whether the file exists or not. The final
/// component is not resolved: it may not exist yet, or any more. A
/// directory that no longer exists is taken as spelled (made absolute):
/// after an `rm -rf`, a second server on the same spelling is refused
/// rather than told the directory is missing. `ss -xap | grep hotswap-db`
/// shows which process holds one.
struct PathLockName {
    /// The bytes of `sun_path`: a NUL (abstract namespace), then the name.
    let address: [UInt8]

    init(_ path: String) {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[..<$0]) } ?? "."
        let file = slash.map { String(path[path.index(after: $0)...]) } ?? path
        var canonical: String
        if let real = realpath(directory.isEmpty ? "/" : directory, nil) {
            canonical = String(cString: real)
            free(real)
        } else if directory.hasPrefix("/") {
            canonical = directory
        } else {
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            canonical = getcwd(&buffer, buffer.count) != nil
                ? String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) + "/" + directory
                : directory
        }
        if !canonical.hasSuffix("/") { canonical += "/" }
        let digest = SHA256.hash(data: Array((canonical + file).utf8)).map { byte in
            (byte < 16 ? "0" : "") + String(byte, radix: 16)
        }.joined()
        address = [0] + Array("hotswap-db:\(digest)".utf8)
    }

    /// A socket bound to the name (close-on-exec), or the refusal: another
    /// server holds the path.
    func bind(path: String) throws(StorageError) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            throw StorageError("cannot lock database \(path): socket: \(String(cString: strerror(errno)))")
        }
        var socketAddress = sockaddr_un()
        let length = fill(&socketAddress)
        let status = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, length) }
        }
        guard status == 0 else {
            let code = errno
            close(fd)
            if code == EADDRINUSE { throw DatabaseLock.inUse(path) }
            throw StorageError("cannot lock database \(path): bind: \(String(cString: strerror(code)))")
        }
        return fd
    }

    /// This process's descriptor bound to the name, if it has one (handed
    /// over by the engine before an upgrade).
    func findBound() -> Int32? {
        guard let directory = opendir("/proc/self/fd") else { return nil }
        defer { closedir(directory) }
        let listing = dirfd(directory)
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let fd = Int32(name), fd != listing, isBound(fd) else { continue }
            return fd
        }
        return nil
    }

    private func isBound(_ fd: Int32) -> Bool {
        var socketAddress = sockaddr_un()
        var length = socklen_t(MemoryLayout<sockaddr_un>.size)
        let status = withUnsafeMutablePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard status == 0, socketAddress.sun_family == sa_family_t(AF_UNIX) else { return false }
        let offset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
        guard Int(length) == offset + address.count else { return false }
        return withUnsafeBytes(of: socketAddress.sun_path) { Array($0.prefix(address.count)) == address }
    }

    /// Writes the address into `socketAddress`; returns its length (an
    /// abstract name has no terminating NUL: the length bounds it).
    private func fill(_ socketAddress: inout sockaddr_un) -> socklen_t {
        socketAddress.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &socketAddress.sun_path) { $0.copyBytes(from: address) }
        return socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + address.count)
    }
}
