/// Lines the engine itself sends (Sources/Engine/Sessions/Replies.swift),
/// which the fake sends in the same cases.
public enum FakeReplies {
    public static let serverFull = "-ERR SERVER_FULL too many connections, try again later"
    /// A request whose handler returned GAME_OK without replying.
    public static let noReply = "-ERR INTERNAL the game logic sent no reply"
    /// A request whose handler returned an error status without replying.
    public static let moduleFailed = "-ERR INTERNAL the game logic failed on this request"
    public static let shutdown = ">SHUTDOWN the server is shutting down"
    public static let replaced = ">REPLACED another connection resumed this session; closing"
}
