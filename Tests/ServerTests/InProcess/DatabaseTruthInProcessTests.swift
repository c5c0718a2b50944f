import Foundation
import GRDB
import Testing
@testable import HotswapEngine

/// The database file's checks and locks, in process, where a test can do
/// what an operator cannot do on cue: make a path impossible to check
/// without deleting anything, hold a reader's snapshot across a lost file,
/// bind the path lock's name first.
@Suite struct DatabaseTruthInProcessTests {
    private final class Directory {
        let path: String
        init() throws {
            path = FileManager.default.temporaryDirectory.appendingPathComponent("hotswap-truth-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        deinit { try? FileManager.default.removeItem(atPath: path) }
    }

    private static let score = FieldSpec(kind: .player, name: "score", type: .int, unique: false, defaultInt: 0,
                                         defaultString: [])

    private static func batch(_ key: String, _ value: Int64) -> PersistBatch {
        PersistBatch(globalColumns: [], playerColumns: [score], global: nil,
                     players: [StoredRecord(key: Array(key.utf8), values: [.int(value)])])
    }

    /// A path that cannot be checked (a symbolic link loop in it: ELOOP,
    /// as a `chmod` of the directory gives EACCES to anyone but root) or
    /// an open file that cannot be (`fstat` fails) is a transient error,
    /// never a lost file: nothing says the file went. A path that does not
    /// exist is lost.
    @Test func aCheckThatCannotBeDoneIsTransientNotALostFile() throws {
        let directory = try Directory()
        let file = directory.path + "/game.sqlite"
        #expect(FileManager.default.createFile(atPath: file, contents: Data()))
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        #expect(fd >= 0)
        defer { close(fd) }
        #expect(symlink("loop", directory.path + "/loop") == 0)

        let looped = DatabaseFileIdentity(path: directory.path + "/loop/game.sqlite", shown: "looped", descriptor: fd).problem()
        #expect(looped?.lostFile == false && looped?.isTransient == true, "\(String(describing: looped))")
        #expect(looped?.description.hasPrefix("database looped cannot be checked (stat: ") == true, "\(String(describing: looped))")

        let unopened = DatabaseFileIdentity(path: file, shown: "shown", descriptor: -1).problem()
        #expect(unopened?.lostFile == false && unopened?.isTransient == true, "\(String(describing: unopened))")
        #expect(unopened?.description.contains("cannot be checked (fstat of the open file: ") == true)

        #expect(DatabaseFileIdentity(path: file, shown: "shown", descriptor: fd).problem() == nil)
        let moved = DatabaseFileIdentity(path: file + ".gone", shown: "shown", descriptor: fd).problem()
        #expect(moved?.lostFile == true, "\(String(describing: moved))")
    }

    /// The advice for a lost file says what the copy holds by what the
    /// checkpoint did: with a reader holding a snapshot from before the
    /// last flush, the file lacks that flush's frames, and the advice has
    /// the -wal copied too (and the two copies, opened, hold it); once the
    /// reader is gone, the file alone holds every flush.
    @Test func theLostFileAdviceSaysWhatTheCheckpointDid() throws {
        let directory = try Directory()
        let path = directory.path + "/game.sqlite"
        let storage = try SQLiteStorage.open(path: path)
        defer { storage.close() }
        try storage.write(Self.batch("alice", 1))
        // An sqlite3 shell in a read transaction: its snapshot has alice
        // only. Its output goes to a file, line-buffered (a pipe would get
        // it only at exit), polled rather than read: nothing blocks.
        let printed = directory.path + "/reader.out"
        #expect(FileManager.default.createFile(atPath: printed, contents: Data()))
        let reader = Process()
        reader.executableURL = URL(fileURLWithPath: "/usr/bin/stdbuf")
        reader.arguments = ["-oL", "/usr/bin/sqlite3", path]
        let input = Pipe()
        reader.standardInput = input
        reader.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: printed))
        try reader.run()
        defer { if reader.isRunning { kill(reader.processIdentifier, SIGKILL); reader.waitUntilExit() } }
        input.fileHandleForWriting.write(Data("BEGIN; SELECT count(*) FROM players;\n".utf8))
        #expect(waitUntil { FileManager.default.contents(atPath: printed) == Data("1\n".utf8) })
        try storage.write(Self.batch("bob", 2))
        for suffix in ["", "-wal", "-shm"] { #expect(unlink(path + suffix) == 0) }

        let partial = try #require(Self.lostFileError(storage))
        let advice = partial.advice ?? ""
        #expect(advice.contains("frames of its write-ahead log"), "\(advice)")
        #expect(!advice.contains("holds every flush"), "\(advice)")
        let copies = advice.matches(of: /`cp (\/proc\/\d+\/fd\/\d+) (SAFE-COPY\.sqlite(?:-wal)?)`/).map { ($0.1, $0.2) }
        #expect(copies.map { String($0.1) } == ["SAFE-COPY.sqlite", "SAFE-COPY.sqlite-wal"], "\(advice)")
        let safe = directory.path + "/safe"
        try FileManager.default.createDirectory(atPath: safe, withIntermediateDirectories: true)
        // Read through the /proc link (copyItem would copy the link itself).
        for (from, to) in copies { try Data(contentsOf: URL(fileURLWithPath: String(from))).write(to: URL(fileURLWithPath: "\(safe)/\(to)")) }
        #expect(try DatabaseQueue(path: "\(safe)/SAFE-COPY.sqlite").read { db in
            try String.fetchAll(db, sql: "SELECT key FROM players ORDER BY key")
        } == ["alice", "bob"])

        input.fileHandleForWriting.write(Data("COMMIT;\n".utf8))
        try input.fileHandleForWriting.close()
        reader.waitUntilExit()
        let whole = try #require(Self.lostFileError(storage))
        #expect(whole.advice?.contains("holds every flush that succeeded") == true, "\(whole.advice ?? "")")
        #expect(whole.advice?.contains("-wal") == false, "\(whole.advice ?? "")")
    }

    private static func lostFileError(_ storage: SQLiteStorage) -> StorageError? {
        do throws(StorageError) {
            try storage.verifyIdentity()
            return nil
        } catch {
            #expect(error.lostFile, "\(error)")
            return error
        }
    }

    /// A check that reaches the worker after `close` (one queued as the
    /// server stopped) touches nothing `close` released: it says the
    /// storage is closed. `close` a second time does nothing.
    @Test func aCheckAfterCloseTouchesNothing() throws {
        let directory = try Directory()
        let storage = try SQLiteStorage.open(path: directory.path + "/game.sqlite")
        storage.close()
        #expect {
            try storage.verifyIdentity()
        } throws: { error in
            let error = error as? StorageError
            return error?.isTransient == true && error?.lostFile == false && error?.description.contains("is closed") == true
        }
        storage.close()
    }

    /// A path lock handed over in an engine upgrade is used as it came
    /// when it is bound to the path's name, and refused when it is not.
    @Test func aHandedOverPathLockIsUsedWhenItIsBoundToThePathsName() throws {
        let directory = try Directory()
        let path = directory.path + "/game.sqlite"
        let lock = try DatabaseLock.acquire(path: path)
        defer { lock.release() }
        let handed = DatabaseLock(descriptor: lock.descriptor, pathDescriptor: lock.pathDescriptor)
        #expect(try handed.adopting(path: path).pathDescriptor == lock.pathDescriptor)
        let other = directory.path + "/other.sqlite"
        let elsewhere = try PathLockName(other).bind(path: other)
        defer { close(elsewhere) }
        #expect(throws: StorageError.self) {
            try DatabaseLock(descriptor: lock.descriptor, pathDescriptor: elsewhere).adopting(path: path)
        }
    }

    /// Anyone can bind the path lock's name first (abstract names have no
    /// permissions): the server refuses without calling the holder
    /// another server, names it (this test process), and creates nothing.
    @Test func aSquattedPathLockIsRefusedNamingItsHolder() throws {
        let directory = try Directory()
        let path = directory.path + "/game.sqlite"
        let squatter = try PathLockName(path).bind(path: path)
        defer { close(squatter) }
        let (status, log) = try runServerExpectingExit(["--database", path])
        #expect(status == 2, "\(log)")
        #expect(log.contains("database \(path) is held by another process (another server on this path, or someone squatting the name)"), "\(log)")
        #expect(log.contains("is bound by pid \(getpid()) ("), "\(log)")
        #expect(!FileManager.default.fileExists(atPath: path))
    }
}
