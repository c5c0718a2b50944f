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
    /// The path lock's socket. nil only in a lock an older engine handed
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
            let holder = code == EWOULDBLOCK ? LockHolder.ofFlock(on: fd) : nil
            close(fd)
            close(pathLock)
            if code == EWOULDBLOCK { throw fileLocked(path, holder: holder) }
            throw StorageError("cannot lock database \(path): \(String(cString: strerror(code)))")
        }
        return DatabaseLock(descriptor: fd, pathDescriptor: pathLock)
    }

    /// The flock is held. Not "by another server": any process that can
    /// open the file (read access is enough for `flock`) can hold it.
    /// `/proc/locks` (readable by everyone) names the holder's pid.
    static func fileLocked(_ path: String, holder: String?) -> StorageError {
        StorageError("database \(path) is locked by another process (another server on this file, perhaps through another "
            + "path to it, or any process holding a flock on it): "
            + (holder.map { "\($0) holds it" } ?? "its holder is not listed in /proc/locks")
            + "; one server per database")
    }

    /// The lock an engine upgrade handed over, with its path lock: the
    /// flock's descriptor first, then the path lock's socket, used as it
    /// came once `getsockname` says it is bound to this path's name (one
    /// bound to another name, the path resolving elsewhere since, refuses
    /// the resumed engine: the previous one, still holding both, serves on).
    /// Only an older handoff, the flock's descriptor alone, has the path
    /// lock looked for among the descriptors the process inherited, by its
    /// bound name (/proc/self/fd); an engine from before the path lock had
    /// none: the name is bound now (refused if another server took it
    /// meanwhile).
    func adopting(path: String) throws(StorageError) -> DatabaseLock {
        let name = PathLockName(path)
        if let pathDescriptor {
            guard name.isBound(pathDescriptor) else {
                throw StorageError("the path lock the previous engine handed over (descriptor \(pathDescriptor)) is not bound to database \(path)'s name; the path resolves elsewhere now")
            }
            return self
        }
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
    /// process holds the name.
    ///
    /// Which process is not known in advance: an abstract name is open to
    /// every process in the network namespace, whatever its user (no file
    /// permission guards it), and the name is predictable, so another
    /// user can bind it first and keep every server off the path. The
    /// refusal says so, and names the holder when this process can see
    /// it (`LockHolder.ofPathLock`). Why not `SO_PEERCRED`, which would
    /// name any user's process: it needs a connected stream, and the lock
    /// is a datagram socket; abstract names are per socket type (a stream
    /// socket may bind the same name beside it), so a stream lock would
    /// not exclude servers of earlier versions, which bind datagram ones.
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
            if code == EADDRINUSE { throw heldElsewhere(path) }
            throw StorageError("cannot lock database \(path): bind: \(String(cString: strerror(code)))")
        }
        return fd
    }

    /// The name as `ss -xa` and /proc/net/unix show it (`@` for the NUL).
    var shown: String { "@" + String(decoding: address.dropFirst(), as: UTF8.self) }

    /// The refusal when another socket holds the name, with its holder
    /// when this process can see it.
    private func heldElsewhere(_ path: String) -> StorageError {
        let holders = LockHolder.ofPathLock(named: shown)
        let who = holders.isEmpty
            ? "a process this server cannot identify (a datagram socket carries no peer credentials, and only root and "
                + "the holder's own user see which process holds a socket: `ss -xap | grep \(shown.dropFirst())` as root)"
            : holders.joined(separator: ", ")
        return StorageError("database \(path) is held by another process (another server on this path, or someone squatting "
            + "the name): its path lock, the abstract socket \(shown), is bound by \(who); one server per database")
    }

    /// This process's descriptor bound to the name, if it has one (handed
    /// over by an engine from before the handoff carried it).
    func findBound() -> Int32? {
        guard let directory = opendir("/proc/self/fd") else { return nil }
        defer { closedir(directory) }
        let listing = dirfd(directory)
        while let entry = readdir(directory) {
            let name = direntName(entry)
            guard let fd = Int32(name), fd != listing, isBound(fd) else { continue }
            return fd
        }
        return nil
    }

    /// Whether `fd` is a socket bound to this name.
    func isBound(_ fd: Int32) -> Bool {
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

/// Who holds one of the database's locks, as far as /proc tells this
/// process: for a refusal to name, since a refusal cannot otherwise tell
/// another server from anyone else holding the lock. Read only when a
/// start is refused.
enum LockHolder {
    /// The processes with a socket bound to the abstract name `shown`
    /// (`@hotswap-db:…`): its inodes in /proc/net/unix, then the processes
    /// whose /proc/PID/fd links to one. Empty when none can be seen: a
    /// process of another user (its descriptors are readable by root and
    /// that user only) or of another PID namespace.
    static func ofPathLock(named shown: String) -> [String] {
        guard let table = contents(of: "/proc/net/unix") else { return [] }
        // Num RefCount Protocol Flags Type St Inode Path; Type 0002 is a
        // datagram socket (a stream socket of the name excludes no one).
        let inodes = Set(table.split(separator: "\n").compactMap { line -> Substring? in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            return fields.count >= 8 && fields[4] == "0002" && fields[7] == shown ? fields[6] : nil
        }.map { "socket:[\($0)]" })
        guard !inodes.isEmpty, let processes = opendir("/proc") else { return [] }
        defer { closedir(processes) }
        var holders: [String] = []
        while let entry = readdir(processes) {
            guard let pid = Int32(name(of: entry)), let descriptors = opendir("/proc/\(pid)/fd") else { continue }
            defer { closedir(descriptors) }
            while let fd = readdir(descriptors) {
                let link = "/proc/\(pid)/fd/\(name(of: fd))"
                var target = [CChar](repeating: 0, count: 64)
                let count = readlink(link, &target, target.count - 1)
                guard count > 0 else { continue }
                if inodes.contains(String(decoding: target.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)) {
                    holders.append(describe(pid))
                    break
                }
            }
        }
        return holders
    }

    /// The process holding a flock on the file `fd` has open, from
    /// /proc/locks (`1: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE 0 EOF`,
    /// readable by every user), or nil.
    static func ofFlock(on fd: Int32) -> String? {
        var info = stat()
        guard fstat(fd, &info) == 0, let table = contents(of: "/proc/locks") else { return nil }
        // The kernel's encoding of a device number (major 12 bits and
        // more, minor 20), as /proc/locks prints it: "%02x:%02x:%lu".
        let device = UInt64(info.st_dev)
        let major = ((device >> 8) & 0xFFF) | ((device >> 32) & ~UInt64(0xFFF))
        let minor = (device & 0xFF) | ((device >> 12) & ~UInt64(0xFF))
        let wanted = hex2(major) + ":" + hex2(minor) + ":" + String(UInt64(info.st_ino))
        for line in table.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            // A waiter's line has "->" after the number: the holder's has not.
            guard fields.count >= 6, fields[1] == "FLOCK", fields[5] == wanted, let pid = Int32(fields[4]), pid > 0
            else { continue }
            return describe(pid)
        }
        return nil
    }

    /// `pid 812 (gameserver, uid 1000)`: the command name and the owner of
    /// its /proc directory (the process's user).
    static func describe(_ pid: Int32) -> String {
        var details: [String] = []
        if let command = contents(of: "/proc/\(pid)/comm") {
            details.append(String(command.prefix { $0 != "\n" }))
        }
        var info = stat()
        if stat("/proc/\(pid)", &info) == 0 { details.append("uid \(info.st_uid)") }
        return "pid \(pid)" + (details.isEmpty ? "" : " (\(details.joined(separator: ", ")))")
    }

    private static func hex2(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return digits.count < 2 ? "0" + digits : digits
    }

    private static func name(of entry: UnsafeMutablePointer<dirent>) -> String {
        direntName(entry)
    }

    /// A /proc file's text (their size says 0: read to the end).
    private static func contents(of path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            bytes.append(contentsOf: chunk.prefix(count))
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
