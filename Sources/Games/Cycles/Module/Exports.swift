import CyclesGame
import GameABI
import LogicKit

// The C entry points the engine resolves with dlsym, each forwarded to the
// SDK's `Module<Cycles>` (the game itself is the CyclesGame target, which
// the unit tests link without these symbols).

@_cdecl("hotswap_abi_version")
public func hotswapABIVersion() -> UInt32 { Module<Cycles>.abiVersion() }

@_cdecl("hotswap_describe")
public func hotswapDescribe(_ describer: UnsafePointer<game_describer>?) -> Int32 { Module<Cycles>.describe(describer) }

@_cdecl("hotswap_handle")
public func hotswapHandle(_ m: UnsafePointer<game_message>?, _ t: UnsafePointer<game_state_table>?) -> Int32 {
    Module<Cycles>.handle(m, t)
}

@_cdecl("hotswap_session_closed")
public func hotswapSessionClosed(_ session: game_id, _ t: UnsafePointer<game_state_table>?) {
    Module<Cycles>.sessionClosed(session, t)
}

@_cdecl("hotswap_timer")
public func hotswapTimer(_ e: UnsafePointer<game_timer_event>?, _ t: UnsafePointer<game_state_table>?) -> Int32 {
    Module<Cycles>.timer(e, t)
}

@_cdecl("hotswap_tick")
public func hotswapTick(_ k: UnsafePointer<game_tick>?, _ t: UnsafePointer<game_state_table>?) -> Int32 {
    Module<Cycles>.tick(k, t)
}

@_cdecl("hotswap_auth")
public func hotswapAuth(_ r: UnsafePointer<game_auth_result>?, _ t: UnsafePointer<game_state_table>?) -> Int32 {
    Module<Cycles>.auth(r, t)
}

@_cdecl("hotswap_session_away")
public func hotswapSessionAway(_ session: game_id, _ t: UnsafePointer<game_state_table>?) {
    Module<Cycles>.sessionAway(session, t)
}

@_cdecl("hotswap_session_back")
public func hotswapSessionBack(_ session: game_id, _ t: UnsafePointer<game_state_table>?) {
    Module<Cycles>.sessionBack(session, t)
}

@_cdecl("hotswap_migrate")
public func hotswapMigrate(_ m: UnsafePointer<game_migration>?, _ entity: game_id, _ t: UnsafePointer<game_state_table>?)
    -> Int32
{
    Module<Cycles>.migrate(m, entity, t)
}

@_cdecl("hotswap_migrate_down")
public func hotswapMigrateDown(_ m: UnsafePointer<game_migration>?, _ entity: game_id,
                               _ t: UnsafePointer<game_state_table>?) -> Int32 {
    Module<Cycles>.migrateDown(m, entity, t)
}
