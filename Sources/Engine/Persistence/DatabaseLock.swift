import Glibc

/// One server per database: an exclusive `flock` on the database file,
/// held on a descriptor of its own for the life of the process.
///
/// Why `flock` and not SQLite's own locking: SQLite's locks are per
/// transaction, so a second server would happily interleave its writes
/// with ours; `PRAGMA locking_mode=EXCLUSIVE` would stop that but would also
/// stop `sqlite3 .backup` and every other reader while we run. `flock`
/// locks are independent of SQLite's POSIX record locks (on Linux, for
/// local files), so readers and backups still work. The descriptor is
/// never closed while the database is open: closing any descriptor of the
/// file would drop SQLite's record locks along with it (a POSIX rule).
struct DatabaseLock: Sendable {
    let descriptor: Int32

    /// Opens (creating if needed, mode 0644) and locks `path`.
    static func acquire(path: String) throws(StorageError) -> DatabaseLock {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw StorageError("cannot open database \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            close(fd)
            if code == EWOULDBLOCK {
                throw StorageError("database \(path) is in use by another server (one server per database)")
            }
            throw StorageError("cannot lock database \(path): \(String(cString: strerror(code)))")
        }
        return DatabaseLock(descriptor: fd)
    }

    /// Gives the lock up (at exit).
    func release() {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
