/// Lines the engine itself sends. The engine interprets no game command;
/// these are the answers to limits it enforces and to broken modules.
enum Replies {
    static var serverFull: UnsafeRawBufferPointer { raw("-ERR SERVER_FULL too many connections, try again later") }
    static var tooManyFromAddress: UnsafeRawBufferPointer { raw("-ERR TOO_MANY_CONNECTIONS too many connections from your address (--max-connections-per-ip)") }
    static var lineTooLong: UnsafeRawBufferPointer { raw("-ERR LINE_TOO_LONG line exceeds the maximum length; closing") }
    static var noReply: UnsafeRawBufferPointer { raw("-ERR INTERNAL the game logic sent no reply") }
    static var moduleFailed: UnsafeRawBufferPointer { raw("-ERR INTERNAL the game logic failed on this request") }
    static var moduleFaulted: UnsafeRawBufferPointer { raw("-ERR INTERNAL the game logic crashed on this request; nothing it did was kept") }
    static var moduleTimedOut: UnsafeRawBufferPointer { raw("-ERR TIMEOUT the game logic took too long on this request; nothing it did was kept") }
    static var rateLimited: UnsafeRawBufferPointer { raw("-ERR RATE_LIMITED too many requests, slow down") }
    static var rateLimitedClosing: UnsafeRawBufferPointer { raw("-ERR RATE_LIMITED too many requests; closing") }
    static var loginTimeout: UnsafeRawBufferPointer { raw(">TIMEOUT no login in time; closing") }
    static var idleTimeout: UnsafeRawBufferPointer { raw(">TIMEOUT idle for too long; closing") }
    /// Shared storage: another server took the player (a fenced write).
    static var leaseLost: UnsafeRawBufferPointer {
        raw(">KICKED ELSEWHERE your player is now served by another server; this connection closes")
    }
    static var backlogFull: UnsafeRawBufferPointer { raw("-ERR BUSY too many commands behind a reload; closing") }
    static var shutdown: UnsafeRawBufferPointer { raw(">SHUTDOWN the server is shutting down") }
    static var replaced: UnsafeRawBufferPointer { raw(">REPLACED another connection resumed this session; closing") }
    static var adminTimeout: UnsafeRawBufferPointer { raw("-ERR TIMEOUT no command in time; closing") }
    static var authUnavailable: UnsafeRawBufferPointer { raw("-ERR UNAVAILABLE the game changed while your login was checked; log in again") }
    static var adminEvicted: UnsafeRawBufferPointer { raw("-ERR EVICTED another operator needed the slot; closing") }

    private static func raw(_ text: StaticString) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount)
    }
}
