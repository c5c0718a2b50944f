import Foundation
import Testing
@testable import HotswapEngine

/// SQLiteStorage against a real file, in process: what goes in comes back
/// byte for byte, whatever the bytes.
@Suite struct SQLiteStorageTests {
    private func scratch() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("hotswap-storage-\(UUID().uuidString).sqlite").path
    }

    @Test func valuesRoundTripIncludingNULAndNonUTF8Bytes() throws {
        let path = scratch()
        defer { removeDatabase(URL(fileURLWithPath: path)) }
        let title = FieldSpec(kind: .player, name: "title", type: .string, unique: false, defaultInt: 0,
                              defaultString: [0x72, 0x00, 0x6B])  // a default with a NUL in it
        let score = FieldSpec(kind: .player, name: "score", type: .int, unique: false, defaultInt: -1, defaultString: [])
        let logins = FieldSpec(kind: .global, name: "logins", type: .int, unique: false, defaultInt: 0, defaultString: [])
        let players = [
            StoredRecord(key: Array("alice".utf8), values: [.string(Array("ab\u{0}cd".utf8)), .int(Int64.max)]),
            StoredRecord(key: Array("bob".utf8), values: [.string([0xFF, 0xFE, 0x00]), .int(Int64.min)]),
            StoredRecord(key: Array("zoë".utf8), values: [.string(Array("it's".utf8)), .int(0)]),
        ]
        do {
            let storage = try SQLiteStorage.open(path: path)
            try storage.write(PersistBatch(globalColumns: [logins], playerColumns: [title, score],
                                           global: StoredRecord(key: [], values: [.int(41)]), players: players,
                                           declared: [title, score, logins]))
            storage.close()
        }
        let storage = try SQLiteStorage.open(path: path)
        defer { storage.close() }
        let snapshot = try storage.loadAll()
        #expect(snapshot.playerColumns.map(\.name) == ["title", "score"])
        #expect(snapshot.playerColumns[0].defaultString == [0x72, 0x00, 0x6B])
        #expect(snapshot.playerColumns[1].defaultInt == -1)
        #expect(snapshot.global?.values == [.int(41)])
        #expect(snapshot.players.sorted { $0.key.lexicographicallyPrecedes($1.key) } == players)
        #expect(Set(snapshot.declared.map(\.name)) == ["title", "score", "logins"])
    }

    /// A forgotten player's row is deleted before the batch's records are
    /// written: a player created again under the key in the same batch
    /// stays, with the new values.
    @Test func deletionsComeBeforeTheRecordsOfTheirBatch() throws {
        let path = scratch()
        defer { removeDatabase(URL(fileURLWithPath: path)) }
        let score = FieldSpec(kind: .player, name: "score", type: .int, unique: false, defaultInt: 0, defaultString: [])
        let storage = try SQLiteStorage.open(path: path)
        defer { storage.close() }
        try storage.write(PersistBatch(globalColumns: [], playerColumns: [score], global: nil, players: [
            StoredRecord(key: Array("alice".utf8), values: [.int(6)]),
            StoredRecord(key: Array("bob".utf8), values: [.int(1)]),
        ]))
        var batch = PersistBatch(globalColumns: [], playerColumns: [score], global: nil,
                                 players: [StoredRecord(key: Array("alice".utf8), values: [.int(0)])])
        batch.deleted = [Array("alice".utf8), Array("bob".utf8)]
        try storage.write(batch)
        #expect(try storage.loadAll().players == [StoredRecord(key: Array("alice".utf8), values: [.int(0)])])
    }

    /// A value edited by hand into something the field cannot hold is
    /// refused by name (never read as the default, never a crash at start);
    /// DatabaseTruthTests has the other kinds, through a real server.
    @Test func aHandEditedValueOutOfRangeIsRefused() throws {
        let path = scratch()
        defer { removeDatabase(URL(fileURLWithPath: path)) }
        let score = FieldSpec(kind: .player, name: "score", type: .int, unique: false, defaultInt: 0, defaultString: [])
        do {
            let storage = try SQLiteStorage.open(path: path)
            try storage.write(PersistBatch(globalColumns: [], playerColumns: [score], global: nil,
                                           players: [StoredRecord(key: Array("alice".utf8), values: [.int(3)])]))
            storage.close()
        }
        let (status, output) = try runProgram("/usr/bin/sqlite3", [path, "UPDATE players SET \"score:int\" = 1e300"])
        #expect(status == 0, "\(output)")
        let storage = try SQLiteStorage.open(path: path)
        defer { storage.close() }
        do {
            _ = try storage.loadAll()
            Issue.record("a REAL past Int64 in an int column was read")
        } catch {
            #expect(error.description.contains(#"player 'alice' field score (column "score:int") holds REAL 1e+300: out of the int range"#),
                    "\(error)")
        }
    }

    /// A write the file refuses whatever the moment is not taken for a
    /// full disk: it is reported as not transient.
    @Test func aWriteTheFileRefusesIsNotTransient() throws {
        let path = scratch()
        defer { removeDatabase(URL(fileURLWithPath: path)) }
        let storage = try SQLiteStorage.open(path: path)
        defer { storage.close() }
        let unique = FieldSpec(kind: .player, name: "score", type: .int, unique: false, defaultInt: 0, defaultString: [])
        // SQLite allows at most 2,000 columns in a table.
        let columns = (0..<2001).map { FieldSpec(kind: .player, name: "f\($0)", type: .int, unique: false,
                                                 defaultInt: 0, defaultString: []) }
        do {
            try storage.write(PersistBatch(globalColumns: [], playerColumns: [unique] + columns, global: nil, players: []))
            Issue.record("a table of 2,003 columns was accepted")
        } catch {
            #expect(!error.isTransient, "\(error)")
            #expect(error.description.contains("too many columns"))
        }
    }
}
