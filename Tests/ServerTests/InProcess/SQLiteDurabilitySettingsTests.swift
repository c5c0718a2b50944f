import Foundation
import GRDB
import Testing
@testable import HotswapEngine

/// The durability settings of the server's own database connection, which
/// docs/PERSISTENCE.md promises: WAL, and `synchronous=NORMAL` (a commit
/// survives the process being killed at any point; only a power loss may
/// roll back the last commits). `synchronous` is a setting of each
/// connection, not of the file, so no other process can read the
/// server's: this opens the storage through its real initializer and asks
/// its connection. (DurabilityTests checks WAL from outside, on a running
/// server.)
@Suite struct SQLiteDurabilitySettingsTests {
    @Test func theStorageConnectionIsInWALModeWithSynchronousNormal() throws {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("hotswap-settings-\(UUID().uuidString).sqlite").path
        defer { removeDatabase(URL(fileURLWithPath: path)) }
        let storage = try SQLiteStorage.open(path: path)
        defer { storage.close() }
        // The connection is private to SQLiteStorage: reached by reflection,
        // so that the test asks the very connection the flushes use.
        let queue = try #require(Mirror(reflecting: storage).descendant("queue") as? DatabaseQueue,
                                 "SQLiteStorage no longer keeps its DatabaseQueue in `queue`")
        let (synchronous, journalMode) = try queue.inDatabase { db in
            (try Int.fetchOne(db, sql: "PRAGMA synchronous"), try String.fetchOne(db, sql: "PRAGMA journal_mode"))
        }
        // 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA.
        #expect(synchronous == 1, "PRAGMA synchronous is \(String(describing: synchronous)), not 1 (NORMAL)")
        #expect(journalMode == "wal")
    }
}
