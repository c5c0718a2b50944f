import LogicKit

extension Gems {
    /// The game's fields, in the order the engine knows them by: append
    /// new ones at the end (1.0.0's first eight, then 1.1.0's, then 1.2.0's).
    public struct Fields: LoginFields {
        public let name: SessionField<String>
        public let nameKey: SessionField<String>
        let x: SessionField<Int>
        let y: SessionField<Int>
        /// Durable: kept under the player's name across logouts and restarts.
        let score: PlayerField<Int>
        /// The board: one bit per cell holding a gem (see Grid).
        let gems: RoomField<Int>
        let round: RoomField<Int>
        let logins: GlobalField<Int>
        /// Gems taken in the current round of the session's room.
        let roundPoints: SessionField<Int>
        /// `now` of the session's last line, for the AFK rule.
        let lastRequest: SessionField<Int>
        /// The session's pending `afk` timer (0: none).
        let afkTimer: SessionField<Int>
        /// The room's pending `round_end` timer (0: none; a room made
        /// before 1.1.0 gets one at its next request).
        let roundTimer: RoomField<Int>
        public let loginName: SessionField<String>

        public init(_ s: inout Schema) {
            name = s.field("name")
            nameKey = s.field("name_key", unique: true)
            x = s.field("x")
            y = s.field("y")
            score = s.field("score")
            gems = s.field("gems")
            round = s.field("round")
            logins = s.field("logins")
            roundPoints = s.field("round_points")
            lastRequest = s.field("last_request_ms")
            afkTimer = s.field("afk_timer")
            roundTimer = s.field("round_timer")
            loginName = s.field("login_name")
        }
    }
}
