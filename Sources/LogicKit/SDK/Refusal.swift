/// Why a request was turned down: the client reads `-ERR CODE message`.
///
/// Throwing one from a command, hook, timer or tick **undoes everything
/// the call did** (ABI 1.5 `undo`: fields, rooms, timers, output), then the
/// SDK replies with it. So a handler may write as it goes and refuse
/// halfway: the game never sees half a move. It is a plain value (typed
/// throws), so throwing allocates nothing.
public struct Refusal: Error, Sendable {
    /// The machine-readable code, upper-case: `NOT_YOUR_TURN`.
    public let code: StaticString
    /// The human-readable rest of the line.
    public let message: StaticString

    /// For a usage error: the command whose usage the message shows.
    let usage: (verb: StaticString, arguments: StaticString)?

    public init(_ code: StaticString, _ message: StaticString) {
        self.code = code
        self.message = message
        self.usage = nil
    }

    /// `-ERR SYNTAX usage: VERB arguments`.
    public static func usage(_ verb: StaticString, _ arguments: StaticString) -> Refusal {
        Refusal(code: "SYNTAX", message: "", usage: (verb, arguments))
    }

    private init(code: StaticString, message: StaticString, usage: (verb: StaticString, arguments: StaticString)?) {
        self.code = code
        self.message = message
        self.usage = usage
    }

    /// The line a request's author reads.
    public var line: Line {
        var line = Line()
        line.append("-ERR ")
        line.append(code)
        line.append(" ")
        if let usage {
            line.append("usage: ")
            line.append(usage.verb)
            if usage.arguments.utf8CodeUnitCount > 0 {
                line.append(" ")
                line.append(usage.arguments)
            }
        } else {
            line.append(message)
        }
        return line
    }

    public static let notLoggedIn = Refusal("NOT_LOGGED_IN", "LOGIN name first")
    public static let notInRoom = Refusal("NOT_IN_ROOM", "JOIN a room first")
}
