/// One request line split into a verb and its arguments, without copying.
///
///     "  say   hello  world "
///        \_/   \___________/
///        verb  arguments (surrounding blanks trimmed, inner ones kept)
///
/// Blanks are spaces and tabs. `Request` holds only views into the line, so
/// it is valid as long as the line buffer is (one `handle` call).
public struct Request {
    /// The verb as sent; compare it with `verbIs`, which ignores ASCII case.
    public let verb: UnsafeRawBufferPointer
    /// Everything after the verb, trimmed: the free text of `SAY hi there`.
    public let arguments: UnsafeRawBufferPointer

    /// Parses `line`; `nil` when it holds nothing but blanks.
    public init?(line: UnsafeRawBufferPointer) {
        var tokens = Tokens(line)
        guard let verb = tokens.next() else { return nil }
        self.verb = verb
        self.arguments = Request.trimmed(tokens.remainder)
    }

    /// True when the verb equals `name`, ignoring ASCII case. `name` must be
    /// upper-case ASCII.
    public func verbIs(_ name: StaticString) -> Bool {
        Bytes.equalsIgnoringCase(verb, upper: name)
    }

    /// The arguments as blank-separated tokens.
    public var argumentTokens: Tokens { Tokens(arguments) }

    static func trimmed(_ bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        var lower = 0
        var upper = bytes.count
        while lower < upper, Bytes.isBlank(bytes[lower]) { lower += 1 }
        while upper > lower, Bytes.isBlank(bytes[upper - 1]) { upper -= 1 }
        return UnsafeRawBufferPointer(rebasing: bytes[lower..<upper])
    }
}

/// Blank-separated tokens of a byte range, produced without allocation.
public struct Tokens: IteratorProtocol, Sequence {
    private let bytes: UnsafeRawBufferPointer
    private var position = 0

    public init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    /// The bytes not yet consumed by `next()`, blanks included.
    public var remainder: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[position...])
    }

    public mutating func next() -> UnsafeRawBufferPointer? {
        while position < bytes.count, Bytes.isBlank(bytes[position]) { position += 1 }
        guard position < bytes.count else { return nil }
        let start = position
        while position < bytes.count, !Bytes.isBlank(bytes[position]) { position += 1 }
        return UnsafeRawBufferPointer(rebasing: bytes[start..<position])
    }
}
