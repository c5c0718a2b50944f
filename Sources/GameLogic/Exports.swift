import GameABI
import LogicKit
import Protocol

// The C entry points the engine resolves with dlsym. Everything else in this
// module is internal; no Swift type crosses into the engine.

/// The ABI this module was built against (from game_abi.h).
@_cdecl("hotswap_abi_version")
public func hotswapABIVersion() -> UInt32 {
    UInt32(GAME_ABI_VERSION)
}

/// Declares the module's name, version and fields.
@_cdecl("hotswap_describe")
public func hotswapDescribe(_ describer: UnsafePointer<game_describer>?) -> Int32 {
    guard let describer else { return GAME_ERR_BAD_ARGUMENT }
    return describe(describer, name: "gems", version: Game.version,
                    fields: Field.allCases.map(\.declaration))
}

/// Handles one request line.
@_cdecl("hotswap_handle")
public func hotswapHandle(
    _ message: UnsafePointer<game_message>?, _ table: UnsafePointer<game_state_table>?
) -> Int32 {
    guard let message, let table else { return GAME_ERR_BAD_ARGUMENT }
    let line = UnsafeRawBufferPointer(start: message.pointee.line, count: message.pointee.length)
    return Game(host: Host(table), session: message.pointee.session).handle(line)
}

/// A session is going away (quit, disconnect, kicked): tell its room.
@_cdecl("hotswap_session_closed")
public func hotswapSessionClosed(_ session: game_id, _ table: UnsafePointer<game_state_table>?) {
    guard let table else { return }
    Game(host: Host(table), session: session).announceDeparture()
}

/// A timer the game set has come due (ABI 1.3): gem_respawn, round_end or
/// afk (see Timers). Set by this module or by an earlier version of it.
@_cdecl("hotswap_timer")
public func hotswapTimer(
    _ event: UnsafePointer<game_timer_event>?, _ table: UnsafePointer<game_state_table>?
) -> Int32 {
    guard let event, let table else { return GAME_ERR_BAD_ARGUMENT }
    return Timers(host: Host(table)).fire(event.pointee)
}

/// A room's tick (`batch_hz`): nothing to simulate on this board; the
/// engine writes the room's held events after it returns.
@_cdecl("hotswap_tick")
public func hotswapTick(_ tick: UnsafePointer<game_tick>?, _ table: UnsafePointer<game_state_table>?) -> Int32 {
    GAME_OK
}

/// The engine's answer to a LOGIN or SECRET this module asked it to check
/// (ABI 1.4): the reply to that request is made here.
@_cdecl("hotswap_auth")
public func hotswapAuth(_ result: UnsafePointer<game_auth_result>?, _ table: UnsafePointer<game_state_table>?) -> Int32 {
    guard let result, let table else { return GAME_ERR_BAD_ARGUMENT }
    return Game(host: Host(table), session: result.pointee.session).loggedIn(result.pointee)
}

/// A session's connection dropped (ABI 1.4): its room sees `>AWAY name`.
@_cdecl("hotswap_session_away")
public func hotswapSessionAway(_ session: game_id, _ table: UnsafePointer<game_state_table>?) {
    guard let table else { return }
    Game(host: Host(table), session: session).announceAway()
}

/// A RESUME brought the session back (ABI 1.4): its room sees `>BACK name`.
@_cdecl("hotswap_session_back")
public func hotswapSessionBack(_ session: game_id, _ table: UnsafePointer<game_state_table>?) {
    guard let table else { return }
    Game(host: Host(table), session: session).announceBack()
}
