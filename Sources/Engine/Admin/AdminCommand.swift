import Protocol

/// One line of the admin protocol, parsed. Pure (no I/O, no engine state),
/// so it is unit-tested and fuzzed on its own.
///
///     AUTH token        STATUS        RELOAD [path]
///     ROLLBACK          MODULES       UPGRADE [path]
///     SAVE              FORGET key    PING          HELP          QUIT
package enum AdminCommand: Equatable, Sendable {
    /// Nothing but blanks.
    case empty
    case auth(token: [UInt8])
    case ping
    case quit
    case help
    case status
    case modules
    case rollback
    /// A bare `RELOAD` (nil) reloads the configured module path.
    case reload(path: String?)
    /// A bare `UPGRADE` (nil) runs the engine build at the server's own path.
    case upgrade(path: String?)
    /// Write every changed player and global now, and answer once written.
    case save
    /// Delete a stored player for good (an erasure request).
    case forget(key: [UInt8])
    case unknown

    package init(line: UnsafeRawBufferPointer) {
        guard let request = Request(line: line) else {
            self = .empty
            return
        }
        if request.verbIs("AUTH") {
            self = .auth(token: Array(request.arguments))
        } else if request.verbIs("PING") {
            self = .ping
        } else if request.verbIs("QUIT") {
            self = .quit
        } else if request.verbIs("HELP") {
            self = .help
        } else if request.verbIs("STATUS") {
            self = .status
        } else if request.verbIs("MODULES") {
            self = .modules
        } else if request.verbIs("ROLLBACK") {
            self = .rollback
        } else if request.verbIs("RELOAD") {
            self = .reload(path: request.arguments.isEmpty ? nil : String(decoding: request.arguments, as: UTF8.self))
        } else if request.verbIs("SAVE") {
            self = .save
        } else if request.verbIs("FORGET") {
            self = .forget(key: Array(request.arguments))
        } else if request.verbIs("UPGRADE") {
            self = .upgrade(path: request.arguments.isEmpty ? nil : String(decoding: request.arguments, as: UTF8.self))
        } else {
            self = .unknown
        }
    }

    /// Changes the module (audited with the swap's outcome).
    var isSwap: Bool {
        switch self {
        case .reload, .rollback: true
        default: false
        }
    }

    /// May run before AUTH.
    var allowedBeforeAuth: Bool {
        switch self {
        case .empty, .auth, .ping, .quit: true
        default: false
        }
    }

    /// The verb, for the log (never the token).
    var verb: String {
        switch self {
        case .empty: ""
        case .auth: "AUTH"
        case .ping: "PING"
        case .quit: "QUIT"
        case .help: "HELP"
        case .status: "STATUS"
        case .modules: "MODULES"
        case .rollback: "ROLLBACK"
        case .reload: "RELOAD"
        case .upgrade: "UPGRADE"
        case .save: "SAVE"
        case .forget: "FORGET"
        case .unknown: "UNKNOWN"
        }
    }
}
