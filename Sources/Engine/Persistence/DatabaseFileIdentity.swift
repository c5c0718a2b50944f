import Glibc

/// Whether `--database PATH` still names the file the server has open.
///
/// SQLite writes through the descriptors it opened: after `rm -rf` of the
/// database's directory, `rm` of the file, a `mv` away or a file moved
/// over it, every commit still succeeds, into a file no one can open any
/// more (it is freed when the process exits) or one the operator no longer
/// looks at. A server that counted those commits as written would answer
/// SAVE with `+OK`, report no database error, and exit 0 having lost
/// everything. So every flush checks, on the database's worker, before
/// its transaction and after it (`SQLiteStorage.write`); an idle server
/// checks on its ticks (at most once a second), and so do a SAVE and a
/// final flush with nothing to write. A path that no longer names the
/// open file fails the flush, and its records stay dirty in memory.
///
/// The check compares `stat(path)` with `fstat` of a descriptor on the
/// open file: the same device and inode, and a link count above zero.
/// Which descriptor: SQLite's own is private to its unix VFS (no API
/// returns it), so the one-server lock's (`DatabaseLock.descriptor`, an
/// `open` of the same path) stands for it, and `SQLiteStorage.open` proves
/// once that both are one file: the path names the lock's file before and
/// after SQLite opened it, and SQLite's `SQLITE_FCNTL_HAS_MOVED` (its own
/// descriptor against the path, by inode) says it has not moved. An
/// inode does not change under an open descriptor, so what held then holds
/// for as long as both stay open. A path replaced by another file and put
/// back within that open is not seen (it cannot happen by accident).
///
/// The `-wal` and `-shm` beside the file are SQLite's too (its write-ahead
/// log and the log's index, shared with readers): deleted or replaced,
/// later commits go to a log no other reader sees (a backup would miss
/// them, a reader with an index of its own could read torn pages), so
/// they are checked the same way, against their identity when the file was
/// opened (SQLite keeps both open, unchanged, while it has the database
/// open). One that did not exist then (a locking mode without `-shm`) is
/// not checked.
struct DatabaseFileIdentity: Sendable {
    /// A file as the kernel tells them apart.
    struct FileID: Equatable, Sendable {
        let device: UInt64
        let inode: UInt64

        init(_ info: stat) {
            device = UInt64(info.st_dev)
            inode = UInt64(info.st_ino)
        }
    }

    /// The path as the server was given it: what it opens again at its
    /// next start, and what is checked.
    let path: String
    /// The path as the log shows it (its full path when it was opened).
    let shown: String
    /// A descriptor on the open database file (the flock's).
    let descriptor: Int32
    /// The `-wal` and `-shm` as they were once the database was open.
    let companions: [(suffix: String, file: FileID)]

    /// Why the path does not name the open file (`lostFile`), why it cannot
    /// be told (transient), or nil. Three `stat`s and an `fstat`: the
    /// worker's, never the loop's.
    ///
    /// Only what proves the file gone is `lostFile`: the path (or a
    /// companion's) does not exist (`ENOENT`, `ENOTDIR`), it names another
    /// file, or the open file has no name left. A check that merely cannot
    /// be done (a `chmod` of the directory: `EACCES`; `ELOOP`, `EIO`, a
    /// failed `fstat`) proves nothing: marked lost, it would stop flushes,
    /// set `db_file_lost=1` saying the path does not name the open file
    /// (untrue, as far as anyone knows) and make a stop exit 1 for a file
    /// that is fine. It fails the flush as a transient error instead
    /// (counted in `db_errors` with its reason, the records stay dirty and
    /// are retried): nothing is written while the path cannot be checked,
    /// as nothing could be claimed written to it.
    func problem() -> StorageError? {
        var open = stat()
        guard fstat(descriptor, &open) == 0 else {
            return uncheckable("fstat of the open file: \(String(cString: strerror(errno)))")
        }
        var named = stat()
        if stat(path, &named) != 0 {
            let code = errno
            guard code == ENOENT || code == ENOTDIR else {
                return uncheckable("stat: \(String(cString: strerror(code)))")
            }
            return open.st_nlink == 0
                ? lost("was deleted (the path no longer exists, and the file the server has open has no name left)")
                : lost("was moved or renamed (the path no longer exists; the file the server has open still has a name elsewhere)")
        }
        if FileID(named) != FileID(open) {
            return lost("was replaced (the path names another file, inode \(named.st_ino), not the one the server has open, inode \(open.st_ino)\(open.st_nlink == 0 ? ", which was deleted" : ""))")
        }
        for (suffix, file) in companions {
            var companion = stat()
            if stat(path + suffix, &companion) != 0 {
                let code = errno
                guard code == ENOENT || code == ENOTDIR else {
                    return uncheckable("stat of \(shown + suffix): \(String(cString: strerror(code)))")
                }
                return lost("lost its \(suffix) file (\(shown + suffix): \(String(cString: strerror(code)))), which SQLite still has open")
            }
            if FileID(companion) != file {
                return lost("had its \(suffix) file replaced (\(shown + suffix) is not the one SQLite has open)")
            }
        }
        return nil
    }

    /// The path and the file `descriptor` has open, checked without the
    /// `-wal` and `-shm` (before SQLite opened them).
    init(path: String, shown: String, descriptor: Int32) {
        self.init(path: path, shown: shown, descriptor: descriptor, companions: [])
    }

    private init(path: String, shown: String, descriptor: Int32, companions: [(suffix: String, file: FileID)]) {
        self.path = path
        self.shown = shown
        self.descriptor = descriptor
        self.companions = companions
    }

    /// The identity of the files as they are now, the `-wal` and `-shm`
    /// included (once SQLite has the database open); the reason, thrown,
    /// when the path does not name the file `descriptor` has open.
    func bound() throws(StorageError) -> DatabaseFileIdentity {
        if let problem = problem() { throw problem }
        var companions: [(suffix: String, file: FileID)] = []
        for suffix in ["-wal", "-shm"] {
            var info = stat()
            if stat(path + suffix, &info) == 0 { companions.append((suffix, FileID(info))) }
        }
        return DatabaseFileIdentity(path: path, shown: shown, descriptor: descriptor, companions: companions)
    }

    /// This process's descriptor on the companion `suffix` (`-wal`) as it
    /// was when the database was opened, found by device and inode in
    /// /proc/self/fd (SQLite keeps its descriptors to itself): for the
    /// advice of a lost file, which may need its `-wal` copied out too.
    /// nil when it was not recorded or is not open. One `fstat` per open
    /// descriptor: only when a lost file's log says so.
    func openDescriptor(of suffix: String) -> Int32? {
        guard let wanted = companions.first(where: { $0.suffix == suffix })?.file,
            let directory = opendir("/proc/self/fd")
        else { return nil }
        defer { closedir(directory) }
        let listing = dirfd(directory)
        while let entry = readdir(directory) {
            let name = direntName(entry)
            guard let fd = Int32(name), fd != listing else { continue }
            var info = stat()
            if fstat(fd, &info) == 0, FileID(info) == wanted { return fd }
        }
        return nil
    }

    private func lost(_ what: String) -> StorageError {
        StorageError("database \(shown) \(what); nothing is written to it", lostFile: true)
    }

    /// The check could not be done: not a lost file (see `problem`).
    private func uncheckable(_ why: String) -> StorageError {
        StorageError("database \(shown) cannot be checked (\(why)); nothing is written to it until it can", transient: true)
    }
}
