import Protocol

/// A request's arguments, taken one by one. Each taker throws the
/// command's usage error when the argument is missing or malformed, so a
/// handler reads like its usage line:
///
///     let x = try args.int(in: 0...7)
///     let y = try args.int(in: 0...7)
///     try args.end()
public struct Arguments {
    var tokens: Tokens
    /// The whole argument text, trimmed (free text such as a chat line).
    public let all: Text
    let usage: Refusal

    init(_ request: Request, usage: Refusal) {
        self.tokens = request.argumentTokens
        self.all = Text(request.arguments)
        self.usage = usage
    }

    /// The next blank-separated word.
    public mutating func word() throws(Refusal) -> Text {
        guard let token = tokens.next() else { throw usage }
        return Text(token)
    }

    /// The next word, or nil when there is none.
    public mutating func optionalWord() -> Text? { tokens.next().map(Text.init) }

    /// The next word as a whole number within `range`.
    public mutating func int(in range: ClosedRange<Int> = Int.min...Int.max) throws(Refusal) -> Int {
        guard let value = try word().int, range.contains(value) else { throw usage }
        return value
    }

    /// The next word, which must be one of `choices` (ignoring case): its
    /// index in `choices`.
    public mutating func choice(_ choices: StaticString...) throws(Refusal) -> Int {
        let word = try word()
        for (index, choice) in choices.enumerated() where word.is(choice) { return index }
        throw usage
    }

    /// Everything not taken yet, trimmed; throws when empty.
    public mutating func rest() throws(Refusal) -> Text {
        let remainder = tokens.remainder
        var lower = 0
        while lower < remainder.count, Bytes.isBlank(remainder[lower]) { lower += 1 }
        guard lower < remainder.count else { throw usage }
        var upper = remainder.count
        while upper > lower, Bytes.isBlank(remainder[upper - 1]) { upper -= 1 }
        tokens = Tokens(UnsafeRawBufferPointer(start: nil, count: 0))
        return Text(UnsafeRawBufferPointer(rebasing: remainder[lower..<upper]))
    }

    /// Throws the usage error if anything is left.
    public mutating func end() throws(Refusal) {
        if tokens.next() != nil { throw usage }
    }

    /// The usage error, to throw for an argument that parses but is wrong.
    public var usageError: Refusal { usage }
}

/// What a command needs before its handler runs; the router refuses with
/// the standard error otherwise (`NOT_LOGGED_IN`, `NOT_IN_ROOM`).
public enum Requirement: Sendable {
    case nothing, login, room
}

/// One verb a game answers: its name, usage, what it needs, and its
/// handler. The router matches verbs ignoring case, parses nothing itself
/// (the handler takes its `Arguments`), generates HELP from the usages and
/// `-ERR SYNTAX usage: ...` from a failed taker.
public struct Command<G: Game>: Sendable {
    public typealias Handler = @Sendable (Context<G>, inout Arguments) throws(Refusal) -> Void
    public let verb: StaticString
    public let usage: StaticString
    public let needs: Requirement
    /// Whether HELP lists it.
    public let listed: Bool
    let handler: Handler

    /// - Parameters:
    ///   - verb: upper-case ASCII (`"MOVE"`); clients may send any case.
    ///   - usage: the arguments, as HELP shows them (`"N|S|E|W"`).
    public init(_ verb: StaticString, _ usage: StaticString = "", needs: Requirement = .nothing, listed: Bool = true,
                _ handler: @escaping Handler) {
        self.verb = verb
        self.usage = usage
        self.needs = needs
        self.listed = listed
        self.handler = handler
    }

    /// Runs the handler: for a game's own verb that wraps a standard one.
    public func run(_ c: Context<G>, _ args: inout Arguments) throws(Refusal) { try handler(c, &args) }
}
