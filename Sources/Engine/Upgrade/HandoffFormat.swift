/// The bytes an engine leaves for the engine it `execve`s into: everything
/// the next one needs to serve the next byte as if nothing had happened.
/// Pure (no I/O): the upgrader writes the result to a memfd, the resumed
/// engine reads it back; unit-tested on its own, truncated and garbage
/// input included.
///
///     offset  size  field
///          0     8  magic "HSHANDOF"
///          8     4  format version of the body
///         12     4  P, length of the fallback block
///         16     P  fallback block (FallbackPlan), same layout in every format
///       16+P     8  B, length of the body
///       24+P     B  sections: tag (4), length (8), payload; each tag once
///
/// Integers are little-endian; byte strings and strings are a 4-byte
/// length and the bytes; lists are a 4-byte count and the elements.
///
/// Why a fallback block outside the versioned body: an engine that cannot
/// read the body (another format, a module that no longer loads) must still
/// find the previous engine to hand the same memfd back to. So the block's
/// layout never changes; a change would need a new magic.
///
/// Why sections: each part of the engine (transport, world, logic host)
/// writes and reads its own, and a part added later (the durable players'
/// database) adds a section without touching the others' layout. Each
/// section is a value that conforms to `HandoffSectionCodable`; the
/// engine writes and reads them all as `HandoffSections`.
package enum HandoffFormat {
    /// The format of the body this build writes. Any change to a section's
    /// layout bumps it.
    ///
    /// - 1: the first.
    /// - 2: the engine section ends with the last upgrade's first-poll time.
    /// - 3: the time section (timers and room ticks, ABI 1.3) is added.
    /// - 4 (ABI 1.4): the resume section (tokens and away sessions) is
    ///   added, and a player connection's record ends with the login being
    ///   checked, if any, and the lines that wait behind it.
    package static let current: UInt32 = 4
    /// The formats this build reads: `current`, and older ones it still
    /// knows how to read (a section reader branches on `Handoff.format`).
    /// An engine prints the range for `--check-upgrade` and `--version`; the
    /// running engine refuses, before any exec, a candidate whose range
    /// does not hold the format it writes. Raising the lower bound drops
    /// upgrades from builds that write older formats.
    package static let readable: ClosedRange<UInt32> = 1...4
    /// The largest handoff an engine writes or reads (1 GiB; about 140 bytes
    /// per player plus unsent output, so millions of players fit). One
    /// limit for both sides: a handoff the writer accepted is never refused
    /// by the reader for its size, and the writer refuses, before the exec,
    /// one that is larger.
    package static let maxBytes = 1 << 30
    package static let magic: [UInt8] = Array("HSHANDOF".utf8)
    /// Bytes before the fallback block: magic, format, the block's length.
    package static let prefixHeaderBytes = 16

    /// The whole handoff: the fixed prefix, then the sections `body` writes.
    /// `capacity` is a guess of the body's size (growing a buffer of
    /// megabytes by doubling copies it several times, inside the hold).
    package static func encode(format: UInt32, fallback: FallbackPlan, capacity: Int = 1 << 16,
                               body: (inout HandoffWriter) -> Void) -> [UInt8]
    {
        var block = HandoffWriter()
        fallback.encode(into: &block)
        var sections = HandoffWriter(capacity: capacity)
        sections.format = format
        body(&sections)
        var out = HandoffWriter(capacity: 24 + block.bytes.count + sections.bytes.count)
        out.raw(magic)
        out.u32(format)
        out.u32(UInt32(block.bytes.count))
        out.raw(block.bytes)
        out.u64(UInt64(sections.bytes.count))
        out.raw(sections.bytes)
        return out.bytes
    }

    /// The prefix only: the body's format and the way back. Any engine can
    /// read this much of any handoff with the right magic.
    package static func decodePrefix(_ bytes: [UInt8]) throws(HandoffError) -> (format: UInt32, fallback: FallbackPlan) {
        let (format, fallback, _) = try readPrefix(bytes)
        return (format, fallback)
    }

    /// The prefix, and a reader positioned at the body's length.
    private static func readPrefix(_ bytes: [UInt8]) throws(HandoffError)
        -> (format: UInt32, fallback: FallbackPlan, rest: HandoffReader)
    {
        var reader = HandoffReader(bytes)
        guard bytes.count >= magic.count, Array(bytes[0..<magic.count]) == magic else { throw .badMagic }
        try reader.skip(magic.count, "magic")
        let format = try reader.u32("format version")
        let length = Int(try reader.u32("fallback block length"))
        var block = try reader.sub(length, "fallback block")
        let fallback = try FallbackPlan(from: &block)
        try block.finish("fallback block")
        return (format, fallback, reader)
    }

    /// Every section of a handoff in a format of `readable` (anything else
    /// is refused: this engine could not tell what it would be dropping).
    package static func decode(_ bytes: [UInt8], readable: ClosedRange<UInt32>) throws(HandoffError) -> Handoff {
        let (format, fallback, rest) = try readPrefix(bytes)
        guard readable.contains(format) else { throw .formatMismatch(found: format, readable: readable) }
        var reader = rest
        let bodyLength = try reader.u64("body length")
        guard bodyLength == UInt64(reader.remaining) else {
            throw bodyLength > UInt64(reader.remaining) ? .truncated("body") : .invalid("bytes after the body")
        }
        var sections: [HandoffSection: HandoffReader] = [:]
        while reader.remaining > 0 {
            let tag = try reader.u32("section tag")
            let length = try reader.u64("section length")
            guard length <= UInt64(reader.remaining) else { throw .truncated("section \(tag)") }
            let body = try reader.sub(Int(length), "section \(tag)")
            guard let section = HandoffSection(rawValue: tag) else { throw .unknownSection(tag) }
            guard sections[section] == nil else { throw .duplicateSection(tag) }
            sections[section] = body
        }
        for section in HandoffSection.allCases where sections[section] == nil && section.since <= format {
            throw .missingSection(section)
        }
        return Handoff(format: format, fallback: fallback, sections: sections)
    }
}

extension HandoffFormat {
    /// "1-4" (or "1" for a range of one).
    package static func describe(_ formats: ClosedRange<UInt32>) -> String {
        formats.count == 1 ? "\(formats.lowerBound)" : "\(formats.lowerBound)-\(formats.upperBound)"
    }

    /// "N" or "A-B", as `describe` writes it; nil for anything else.
    package static func parseRange(_ text: Substring) -> ClosedRange<UInt32>? {
        let bounds = text.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard let low = bounds.first.flatMap({ UInt32($0) }) else { return nil }
        guard bounds.count == 2 else { return low...low }
        guard let high = UInt32(bounds[1]), low <= high else { return nil }
        return low...high
    }
}

/// The parts of a handoff's body, each written by the part of the engine
/// that owns the state (see the `+Handoff` files).
package enum HandoffSection: UInt32, CaseIterable, Sendable {
    /// Engine: who wrote it, when the hold started, counters, arguments.
    case engine = 1
    /// Transport: listening sockets.
    case listeners = 2
    /// Transport and handlers: every connection, its bytes and its session.
    case connections = 3
    /// World: sessions, rooms, the state store with hidden columns.
    case world = 4
    /// LogicHost: current and previous module, history, fault counters.
    case logic = 5
    /// WriteBehind: the database lock, what the file has seen, counters.
    case database = 6
    /// The timers and room ticks (format 3 on).
    case time = 7
    /// Resume tokens and away sessions (format 4 on).
    case resume = 8

    /// The first body format that has the section.
    package var since: UInt32 {
        switch self {
        case .time: 3
        case .resume: 4
        default: 1
        }
    }
}

/// A decoded handoff: the fallback block and a reader per section.
package struct Handoff {
    /// The body's format (within the reader's range): what a section reader
    /// branches on once there is more than one.
    package let format: UInt32
    package let fallback: FallbackPlan
    package let sections: [HandoffSection: HandoffReader]

    /// A fresh reader over one section (present: `decode` checked).
    func reader(_ section: HandoffSection) -> HandoffReader { sections[section]! }

    /// Whether the handoff has the section (one added by a later format
    /// may be absent: `HandoffSection.since`).
    func has(_ section: HandoffSection) -> Bool { sections[section] != nil }
}

/// How to give the state back to the engine that wrote it, if the new one
/// cannot take it: exec the previous binary (kept open, its file may have
/// been replaced by the install) with its own arguments and environment,
/// and the same memfd. Its layout is fixed for every format version.
package struct FallbackPlan: Equatable, Sendable {
    /// An O_RDONLY descriptor on the previous engine's executable.
    var previousEngineFD: Int32
    /// Where the previous engine was installed (its `UPGRADE` default).
    var previousEnginePath: String
    /// The previous engine's arguments, without its program name and
    /// without `--resume`.
    var arguments: [String]
    /// The previous engine's environment (`NAME=value`).
    var environment: [String]
    /// Every descriptor handed over, the memfd included: they must stay
    /// open across the fallback's exec too.
    var passedFDs: [Int32]

    package func encode(into writer: inout HandoffWriter) {
        writer.i32(previousEngineFD)
        writer.string(previousEnginePath)
        writer.strings(arguments)
        writer.strings(environment)
        writer.u32(UInt32(passedFDs.count))
        for fd in passedFDs { writer.i32(fd) }
    }

    init(previousEngineFD: Int32, previousEnginePath: String, arguments: [String], environment: [String],
         passedFDs: [Int32])
    {
        self.previousEngineFD = previousEngineFD
        self.previousEnginePath = previousEnginePath
        self.arguments = arguments
        self.environment = environment
        self.passedFDs = passedFDs
    }

    init(from reader: inout HandoffReader) throws(HandoffError) {
        previousEngineFD = try reader.i32("previous engine descriptor")
        previousEnginePath = try reader.string("previous engine path")
        arguments = try reader.strings("arguments")
        environment = try reader.strings("environment")
        let count = try reader.count("passed descriptors", elementSize: 4)
        passedFDs = []
        passedFDs.reserveCapacity(count)
        for _ in 0..<count { passedFDs.append(try reader.i32("passed descriptor")) }
    }
}

/// Why a handoff cannot be read. Every malformed input ends here, never in
/// a crash or an allocation sized by garbage.
package enum HandoffError: Error, Equatable, Sendable, CustomStringConvertible {
    case badMagic
    case truncated(String)
    case formatMismatch(found: UInt32, readable: ClosedRange<UInt32>)
    case unknownSection(UInt32)
    case duplicateSection(UInt32)
    case missingSection(HandoffSection)
    /// A value that cannot be (a count past the end, a bad enum, a state
    /// that breaks an invariant of the part reading it).
    case invalid(String)

    package var description: String {
        switch self {
        case .badMagic: "not a handoff (bad magic)"
        case .truncated(let what): "the handoff is truncated (in \(what))"
        case .formatMismatch(let found, let readable):
            "the handoff is in format \(found), this engine reads formats \(HandoffFormat.describe(readable))"
        case .unknownSection(let tag): "the handoff has a section this engine does not know (\(tag))"
        case .duplicateSection(let tag): "the handoff has section \(tag) twice"
        case .missingSection(let section): "the handoff has no \(section) section"
        case .invalid(let what): "the handoff is invalid: \(what)"
        }
    }
}

/// Appends little-endian values to a byte array.
package struct HandoffWriter {
    package private(set) var bytes: [UInt8] = []
    /// The body format being written: a record that grew in a later format
    /// writes its newer fields only from that format on (a test writes an
    /// older format's bytes this way).
    package var format = HandoffFormat.current

    package init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    mutating func raw<C: Collection>(_ values: C) where C.Element == UInt8 { bytes.append(contentsOf: values) }
    mutating func u8(_ value: UInt8) { bytes.append(value) }
    mutating func bool(_ value: Bool) { bytes.append(value ? 1 : 0) }
    mutating func u32(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func i32(_ value: Int32) { u32(UInt32(bitPattern: value)) }
    mutating func u64(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func i64(_ value: Int64) { u64(UInt64(bitPattern: value)) }
    mutating func int(_ value: Int) { i64(Int64(value)) }

    /// A length-prefixed byte string.
    mutating func bytes<C: Collection>(_ values: C) where C.Element == UInt8 {
        u32(UInt32(values.count))
        bytes.append(contentsOf: values)
    }

    /// A string's UTF-8, length-prefixed (no intermediate array: a handoff
    /// of 10,000 connections writes tens of thousands of them).
    mutating func string(_ value: String) {
        u32(UInt32(value.utf8.count))
        bytes.append(contentsOf: value.utf8)
    }

    mutating func strings(_ values: [String]) {
        u32(UInt32(values.count))
        for value in values { string(value) }
    }

    /// A byte string, or none (a flag byte first).
    mutating func optionalString(_ value: String?) {
        bool(value != nil)
        if let value { string(value) }
    }

    mutating func optionalU64(_ value: UInt64?) {
        bool(value != nil)
        if let value { u64(value) }
    }

    /// One section: its tag, its length (filled in once `body` wrote it)
    /// and its payload.
    mutating func section(_ tag: HandoffSection, _ body: (inout HandoffWriter) -> Void) {
        u32(tag.rawValue)
        let lengthAt = bytes.count
        u64(0)
        let start = bytes.count
        body(&self)
        let length = UInt64(bytes.count - start).littleEndian
        withUnsafeBytes(of: length) { raw in
            for index in 0..<8 { bytes[lengthAt + index] = raw[index] }
        }
    }
}

/// Reads what `HandoffWriter` wrote, within a range of a shared array.
/// Every read checks what is left first and names what it was reading, so
/// a truncated or garbage handoff is refused with the place it broke.
package struct HandoffReader {
    private let storage: [UInt8]
    private var offset: Int
    private let end: Int

    init(_ bytes: [UInt8]) {
        storage = bytes
        offset = 0
        end = bytes.count
    }

    private init(storage: [UInt8], range: Range<Int>) {
        self.storage = storage
        offset = range.lowerBound
        end = range.upperBound
    }

    package var remaining: Int { end - offset }

    private mutating func take(_ count: Int, _ what: String) throws(HandoffError) -> Int {
        guard count >= 0, count <= remaining else { throw .truncated(what) }
        defer { offset += count }
        return offset
    }

    mutating func skip(_ count: Int, _ what: String) throws(HandoffError) { _ = try take(count, what) }

    /// A reader over the next `count` bytes, which this one skips.
    mutating func sub(_ count: Int, _ what: String) throws(HandoffError) -> HandoffReader {
        let start = try take(count, what)
        return HandoffReader(storage: storage, range: start..<(start + count))
    }

    mutating func u8(_ what: String) throws(HandoffError) -> UInt8 { storage[try take(1, what)] }

    mutating func bool(_ what: String) throws(HandoffError) -> Bool {
        switch try u8(what) {
        case 0: return false
        case 1: return true
        case let other: throw .invalid("\(what) is \(other), not a flag")
        }
    }

    mutating func u32(_ what: String) throws(HandoffError) -> UInt32 {
        let at = try take(4, what)
        var value: UInt32 = 0
        for index in 0..<4 { value |= UInt32(storage[at + index]) << (8 * index) }
        return value
    }

    mutating func i32(_ what: String) throws(HandoffError) -> Int32 { Int32(bitPattern: try u32(what)) }

    mutating func u64(_ what: String) throws(HandoffError) -> UInt64 {
        let at = try take(8, what)
        var value: UInt64 = 0
        for index in 0..<8 { value |= UInt64(storage[at + index]) << (8 * index) }
        return value
    }

    mutating func i64(_ what: String) throws(HandoffError) -> Int64 { Int64(bitPattern: try u64(what)) }

    mutating func int(_ what: String) throws(HandoffError) -> Int { Int(try i64(what)) }

    /// A non-negative count, refused when `count * elementSize` bytes could
    /// not follow: garbage cannot make the reader reserve gigabytes.
    mutating func count(_ what: String, elementSize: Int) throws(HandoffError) -> Int {
        let count = Int(try u32(what))
        guard count <= remaining / max(elementSize, 1) else { throw .truncated(what) }
        return count
    }

    mutating func bytes(_ what: String) throws(HandoffError) -> [UInt8] {
        let count = Int(try u32(what))
        let at = try take(count, what)
        return Array(storage[at..<(at + count)])
    }

    mutating func string(_ what: String) throws(HandoffError) -> String {
        String(decoding: try bytes(what), as: UTF8.self)
    }

    mutating func strings(_ what: String) throws(HandoffError) -> [String] {
        let count = try count(what, elementSize: 4)
        var values: [String] = []
        values.reserveCapacity(count)
        for _ in 0..<count { values.append(try string(what)) }
        return values
    }

    mutating func optionalString(_ what: String) throws(HandoffError) -> String? {
        try bool(what) ? try string(what) : nil
    }

    mutating func optionalU64(_ what: String) throws(HandoffError) -> UInt64? {
        try bool(what) ? try u64(what) : nil
    }

    /// Refuses bytes left over: a section read whole matches what was written.
    func finish(_ what: String) throws(HandoffError) {
        guard remaining == 0 else { throw .invalid("\(remaining) bytes left over in \(what)") }
    }
}
