/// The database's section of an engine upgrade's handoff: what the
/// previous engine's write-behind knew, for the next one to go on from.
///
///     persistent                      false with --database :memory:, and nothing follows
///     lock descriptors                the one-server flock, held across the exec
///     columns the file has seen       global and player column counts
///     fields the file says serve      the declared persistent fields
///     counters                        flushes, records, errors, last flush (ms, records, held us), last error
///
/// The rows themselves are not here: every player and the global row go
/// over in World's section, with which of them the file has not taken yet.
/// No flush is on a worker when this is written (the upgrade waits for
/// one to finish, and starts none), so the exec cuts no write short; the
/// next engine writes what is dirty at its first flush. It opens the file
/// again (a new SQLite connection) on the lock it was handed, and reads
/// nothing from it.
struct WriteBehindHandoff: Equatable {
    var lockDescriptors: [Int32]
    var globalColumns: Int
    var playerColumns: Int
    var declared: [FieldSpec]
    var flushes: Int
    var recordsWritten: Int
    var errors: Int
    var lastFlushMilliseconds: Double
    var lastBatchRecords: Int
    var lastHeldMicroseconds: UInt64
    var lastError: String?

    init(_ writeBehind: WriteBehind) {
        lockDescriptors = writeBehind.storage.handedOverDescriptors
        (globalColumns, playerColumns) = writeBehind.persistedColumns
        declared = writeBehind.persistedDeclared
        flushes = writeBehind.flushes
        recordsWritten = writeBehind.recordsWritten
        errors = writeBehind.errors
        lastFlushMilliseconds = writeBehind.lastFlushMilliseconds
        lastBatchRecords = writeBehind.lastBatchRecords
        lastHeldMicroseconds = writeBehind.lastHeldMicroseconds
        lastError = writeBehind.lastError
    }

    /// The section: `state` is nil without a database.
    static func encode(_ state: WriteBehindHandoff?, into writer: inout HandoffWriter) {
        writer.bool(state != nil)
        guard let state else { return }
        writer.u32(UInt32(state.lockDescriptors.count))
        for fd in state.lockDescriptors { writer.i32(fd) }
        writer.int(state.globalColumns)
        writer.int(state.playerColumns)
        writer.u32(UInt32(state.declared.count))
        for spec in state.declared { spec.encode(into: &writer) }
        writer.int(state.flushes)
        writer.int(state.recordsWritten)
        writer.int(state.errors)
        writer.u64(state.lastFlushMilliseconds.bitPattern)
        writer.int(state.lastBatchRecords)
        writer.u64(state.lastHeldMicroseconds)
        writer.optionalString(state.lastError)
    }

    /// Reads the section; nil when the previous engine had no database.
    static func decode(from reader: inout HandoffReader) throws(HandoffError) -> WriteBehindHandoff? {
        guard try reader.bool("persistent") else {
            try reader.finish("database section")
            return nil
        }
        let lockCount = try reader.count("lock descriptors", elementSize: 4)
        var locks: [Int32] = []
        for _ in 0..<lockCount { locks.append(try reader.i32("lock descriptor")) }
        let globalColumns = try reader.int("global columns")
        let playerColumns = try reader.int("player columns")
        let declaredCount = try reader.count("declared fields", elementSize: 30)
        var declared: [FieldSpec] = []
        for _ in 0..<declaredCount { declared.append(try FieldSpec(handoff: &reader)) }
        let state = WriteBehindHandoff(
            lockDescriptors: locks, globalColumns: globalColumns, playerColumns: playerColumns, declared: declared,
            flushes: try reader.int("flushes"), recordsWritten: try reader.int("records written"),
            errors: try reader.int("errors"), lastFlushMilliseconds: Double(bitPattern: try reader.u64("last flush")),
            lastBatchRecords: try reader.int("last batch"), lastHeldMicroseconds: try reader.u64("last held"),
            lastError: try reader.optionalString("last error"))
        try reader.finish("database section")
        return state
    }

    init(lockDescriptors: [Int32], globalColumns: Int, playerColumns: Int, declared: [FieldSpec], flushes: Int,
         recordsWritten: Int, errors: Int, lastFlushMilliseconds: Double, lastBatchRecords: Int,
         lastHeldMicroseconds: UInt64, lastError: String?)
    {
        self.lockDescriptors = lockDescriptors
        self.globalColumns = globalColumns
        self.playerColumns = playerColumns
        self.declared = declared
        self.flushes = flushes
        self.recordsWritten = recordsWritten
        self.errors = errors
        self.lastFlushMilliseconds = lastFlushMilliseconds
        self.lastBatchRecords = lastBatchRecords
        self.lastHeldMicroseconds = lastHeldMicroseconds
        self.lastError = lastError
    }
}
