/// The database's section of an engine upgrade's handoff: what the
/// previous engine's write-behind knew, for the next one to go on from.
///
///     persistent                      false with --database :memory:, and nothing follows
///     lock descriptors                the one-server locks (the flock, then the path
///                                     lock: DatabaseLock), held across the exec;
///                                     none for a shared PostgreSQL database
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
struct DatabaseHandoff: HandoffSectionCodable, Equatable {
    static let section = HandoffSection.database

    /// nil without a database (`--database :memory:`).
    var writeBehind: WriteBehindHandoff?

    init(_ writeBehind: WriteBehindHandoff?) { self.writeBehind = writeBehind }

    func encode(into writer: inout HandoffWriter) {
        writer.bool(writeBehind != nil)
        writeBehind?.encode(into: &writer)
    }

    init(from reader: inout HandoffReader, format: UInt32) throws(HandoffError) {
        writeBehind = try reader.bool("persistent") ? try WriteBehindHandoff(from: &reader, format: format) : nil
    }

    /// Nothing to check here: whether a lock must have come over depends
    /// on the database, which the section does not name. A SQLite file
    /// needs one (a file opened again without it would race another server
    /// for it: `ResumedStart.openStorage` refuses, which hands everything
    /// back); a shared PostgreSQL database has none (its players are
    /// fenced by their leases, which the process keeps).
    func validate() throws(HandoffError) {}
}

/// The write-behind's state after the persistent flag (see
/// `DatabaseHandoff`).
struct WriteBehindHandoff: HandoffRecord, Equatable {
    var lockDescriptors: [Int32]
    var globalColumns: Int
    var playerColumns: Int
    var declared: [FieldSpec]
    var counters: FlushCounters

    func encode(into writer: inout HandoffWriter) {
        writer.descriptors(lockDescriptors)
        writer.int(globalColumns)
        writer.int(playerColumns)
        writer.u32(UInt32(declared.count))
        for spec in declared { spec.encode(into: &writer) }
        writer.int(counters.flushes)
        writer.int(counters.recordsWritten)
        writer.int(counters.errors)
        writer.u64(counters.lastFlushMilliseconds.bitPattern)
        writer.int(counters.lastBatchRecords)
        writer.u64(counters.lastHeldMicroseconds)
        writer.optionalString(counters.lastError)
    }

    init(from reader: inout HandoffReader, format: UInt32) throws(HandoffError) {
        lockDescriptors = try reader.descriptors("lock descriptors")
        globalColumns = try reader.int("global columns")
        playerColumns = try reader.int("player columns")
        let declaredCount = try reader.count("declared fields", elementSize: FieldSpec.smallestHandoffBytes)
        declared = []
        for _ in 0..<declaredCount { declared.append(try FieldSpec(handoff: &reader)) }
        counters = FlushCounters(
            flushes: try reader.int("flushes"), recordsWritten: try reader.int("records written"),
            errors: try reader.int("errors"), lastFlushMilliseconds: Double(bitPattern: try reader.u64("last flush")),
            lastBatchRecords: try reader.int("last batch"), lastHeldMicroseconds: try reader.u64("last held"),
            lastError: try reader.optionalString("last error"))
    }

    init(lockDescriptors: [Int32], globalColumns: Int, playerColumns: Int, declared: [FieldSpec], counters: FlushCounters) {
        self.lockDescriptors = lockDescriptors
        self.globalColumns = globalColumns
        self.playerColumns = playerColumns
        self.declared = declared
        self.counters = counters
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
