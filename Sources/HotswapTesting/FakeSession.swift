import GameABI

/// One fake connection, as a test holds it: `connect()` makes one, `send`
/// and `events(of:)` use it. `id` is the session it serves, which changes
/// when a RESUME from it takes over another session.
public final class FakeSession: CustomStringConvertible {
    /// The session this connection serves (0 if it was refused at connect).
    public internal(set) var id: game_id
    /// False once the connection was closed (QUIT, close_session, REPLACED,
    /// `disconnect`, a restart, or refused at connect).
    public internal(set) var isConnected: Bool
    /// What was queued for the connection when it closed, until read.
    var leftover: [String] = []

    init(id: game_id, connected: Bool) {
        self.id = id
        isConnected = connected
    }

    public var description: String { "FakeSession(\(hex(id))\(isConnected ? "" : ", closed"))" }
}
