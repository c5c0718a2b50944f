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
/// No flush is on a worker when this is written (the upgrade's final flush
/// has finished, and none starts after it), so the exec cuts no write
/// short; the next engine writes what is still dirty at its first flush. It
/// opens the file again (a new SQLite connection) on the lock it was
/// handed, and reads nothing from it.
struct WriteBehindHandoff: Equatable {
    var lockDescriptors: [Int32]
    var globalColumns: Int
    var playerColumns: Int
    var declared: [FieldSpec]
    var counters: FlushCounters

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
        let counters = state.counters
        writer.int(counters.flushes)
        writer.int(counters.recordsWritten)
        writer.int(counters.errors)
        writer.u64(counters.lastFlushMilliseconds.bitPattern)
        writer.int(counters.lastBatchRecords)
        writer.u64(counters.lastHeldMicroseconds)
        writer.optionalString(counters.lastError)
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
        let counters = FlushCounters(
            flushes: try reader.int("flushes"), recordsWritten: try reader.int("records written"),
            errors: try reader.int("errors"), lastFlushMilliseconds: Double(bitPattern: try reader.u64("last flush")),
            lastBatchRecords: try reader.int("last batch"), lastHeldMicroseconds: try reader.u64("last held"),
            lastError: try reader.optionalString("last error"))
        try reader.finish("database section")
        return WriteBehindHandoff(lockDescriptors: locks, globalColumns: globalColumns, playerColumns: playerColumns,
                                  declared: declared, counters: counters)
    }
}

extension WriteBehindHandoff {
    /// What `writeBehind` knows now.
    init(_ writeBehind: WriteBehind) {
        self.init(lockDescriptors: writeBehind.storage.handedOverDescriptors,
                  globalColumns: writeBehind.persistedColumns.global, playerColumns: writeBehind.persistedColumns.player,
                  declared: writeBehind.persistedDeclared, counters: writeBehind.counters)
    }
}
