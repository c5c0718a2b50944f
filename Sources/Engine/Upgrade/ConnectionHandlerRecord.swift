/// What follows a connection's transport record in the handoff: the
/// session that gives its bytes meaning, if it has one.
///
///     kind (0 none, 1 player, 2 admin), then the session's record
///
/// A closing connection's session is gone already (it only has output left
/// to write); a metrics connection never has one (it is closed once its
/// queued answers are out).
enum ConnectionHandlerRecord: HandoffRecord, Equatable {
    case none
    case player(PlayerSessionRecord)
    case admin(AdminSessionRecord)

    private enum Kind: UInt8 {
        case none = 0
        case player = 1
        case admin = 2
    }

    func encode(into writer: inout HandoffWriter) {
        switch self {
        case .none:
            writer.u8(Kind.none.rawValue)
        case .player(let session):
            writer.u8(Kind.player.rawValue)
            session.encode(into: &writer)
        case .admin(let session):
            writer.u8(Kind.admin.rawValue)
            session.encode(into: &writer)
        }
    }

    init(from reader: inout HandoffReader, format: UInt32) throws(HandoffError) {
        switch Kind(rawValue: try reader.u8("handler kind")) {
        case .none?: self = .none
        case .player?: self = .player(try PlayerSessionRecord(from: &reader, format: format))
        case .admin?: self = .admin(try AdminSessionRecord(from: &reader, format: format))
        case nil: throw .invalid("handler kind")
        }
    }
}
