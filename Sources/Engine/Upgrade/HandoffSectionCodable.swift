/// A value one part of the engine writes into a handoff and the next
/// engine reads back: a record inside a section (a session's state inside
/// its connection's record) or a whole section (see `HandoffSectionCodable`).
///
/// Each part writes and reads its state once, here, as a plain value: the
/// live objects are turned into the value before the handoff is written
/// (`Engine.handoffSections`) and the value is taken over after it is read
/// (`Engine.restoreHandoff`), so the bytes can be tested against random
/// values without an engine (Tests/ServerTests/InProcess/HandoffPropertyTests).
protocol HandoffRecord {
    /// Appends the value. Never fails: whatever the engine holds can be
    /// written (a state that cannot go over is refused before the hold, see
    /// `LogicHost.handoffProblem`).
    func encode(into writer: inout HandoffWriter)

    /// Reads what `encode` wrote, as an engine writing `format` wrote it.
    /// Refuses what cannot be read (truncated, a bad tag or flag, a count
    /// past the end) with a `HandoffError`, never a crash or an allocation
    /// sized by garbage.
    init(from reader: inout HandoffReader, format: UInt32) throws(HandoffError)

    /// The part's own rules, which bytes that read cleanly can still break
    /// (two records for one session, a history without its current module).
    /// Called by `HandoffSectionCodable.decode` once the section is read
    /// whole; a record inside a section is checked by its section.
    ///
    /// Separate from decoding so that a test can tell "unreadable" from
    /// "readable but wrong", and so that a rule spanning records (unique
    /// ids) is written once, over the decoded value. Rules that need the
    /// live engine (this engine's `--max-line-length`, a descriptor that
    /// must have been passed, World's arenas and undo journal) stay where
    /// the value is taken over: they are not the bytes' fault.
    func validate() throws(HandoffError)
}

extension HandoffRecord {
    func validate() throws(HandoffError) {}
}

/// A whole section of a handoff's body: its tag, and the `HandoffRecord`
/// that is its payload.
///
/// Why no version per section: the wire layout (tag, length, payload; see
/// `HandoffFormat`) has no room for one, and one number for the whole body
/// is what `--check-upgrade` compares. A section whose layout changes bumps
/// `HandoffFormat.current`, and its decoder branches on the `format` it is
/// given (as `EngineHandoff` does for format 1). `formats` says which
/// formats hold the section's current layout: documentation a test checks
/// against `HandoffFormat.current` (nothing reads it at run time).
protocol HandoffSectionCodable: HandoffRecord {
    /// The section's tag in the body.
    static var section: HandoffSection { get }
    /// The body formats this layout belongs to; an older format in
    /// `HandoffFormat.readable` and not in here is read by the decoder's
    /// own branch.
    static var formats: ClosedRange<UInt32> { get }
}

extension HandoffSectionCodable {
    static var formats: ClosedRange<UInt32> { 1...HandoffFormat.current }

    /// Writes the section: its tag, its length and the payload.
    func encodeSection(into writer: inout HandoffWriter) {
        writer.section(Self.section) { encode(into: &$0) }
    }

    /// Reads the section whole (nothing left over) and checks its rules.
    static func decode(from reader: inout HandoffReader, format: UInt32) throws(HandoffError) -> Self {
        let value = try Self(from: &reader, format: format)
        try reader.finish("\(section) section")
        try value.validate()
        return value
    }

    /// The section out of a decoded handoff.
    static func decode(from handoff: Handoff) throws(HandoffError) -> Self {
        var reader = handoff.reader(section)
        return try decode(from: &reader, format: handoff.format)
    }
}

extension HandoffReader {
    /// A list of `count`-prefixed records, each at least `elementSize`
    /// bytes (so a garbage count is refused before anything is reserved).
    mutating func records<Record: HandoffRecord>(_ what: String, elementSize: Int, format: UInt32)
        throws(HandoffError) -> [Record]
    {
        let count = try count(what, elementSize: elementSize)
        var records: [Record] = []
        // A record in memory can be several times its smallest encoding: a
        // garbage count that passed the bound reserves no more than 4,096
        // up front (the array grows as records really decode).
        records.reserveCapacity(min(count, 4096))
        for _ in 0..<count { records.append(try Record(from: &self, format: format)) }
        return records
    }

    /// A count-prefixed list of 32-bit descriptors.
    mutating func descriptors(_ what: String) throws(HandoffError) -> [Int32] {
        let count = try count(what, elementSize: 4)
        var fds: [Int32] = []
        fds.reserveCapacity(count)
        for _ in 0..<count { fds.append(try i32(what)) }
        return fds
    }
}

extension HandoffWriter {
    /// A count, then each record.
    mutating func records(_ records: [some HandoffRecord]) {
        u32(UInt32(records.count))
        for record in records { record.encode(into: &self) }
    }

    /// A count-prefixed list of 32-bit descriptors.
    mutating func descriptors(_ fds: [Int32]) {
        u32(UInt32(fds.count))
        for fd in fds { i32(fd) }
    }
}
