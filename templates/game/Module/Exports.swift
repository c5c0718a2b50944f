import GameABI
import LogicKit
import __Type__Game

// The C symbols the engine looks up with dlsym, each forwarded to the SDK's
// `Module<__Type__>`. Kept in their own target so tests (and other targets)
// can link the game without a second copy of these symbols.

@_cdecl("hotswap_abi_version")
public func hotswapABIVersion() -> UInt32 { Module<__Type__>.abiVersion() }

@_cdecl("hotswap_describe")
public func hotswapDescribe(_ d: UnsafePointer<game_describer>?) -> Int32 { Module<__Type__>.describe(d) }

@_cdecl("hotswap_handle")
public func hotswapHandle(_ m: UnsafePointer<game_message>?, _ t: UnsafePointer<game_state_table>?) -> Int32 {
    Module<__Type__>.handle(m, t)
}

@_cdecl("hotswap_session_closed")
public func hotswapSessionClosed(_ s: game_id, _ t: UnsafePointer<game_state_table>?) { Module<__Type__>.sessionClosed(s, t) }

@_cdecl("hotswap_timer")
public func hotswapTimer(_ e: UnsafePointer<game_timer_event>?, _ t: UnsafePointer<game_state_table>?) -> Int32 {
    Module<__Type__>.timer(e, t)
}

@_cdecl("hotswap_tick")
public func hotswapTick(_ k: UnsafePointer<game_tick>?, _ t: UnsafePointer<game_state_table>?) -> Int32 {
    Module<__Type__>.tick(k, t)
}

@_cdecl("hotswap_auth")
public func hotswapAuth(_ r: UnsafePointer<game_auth_result>?, _ t: UnsafePointer<game_state_table>?) -> Int32 {
    Module<__Type__>.auth(r, t)
}

@_cdecl("hotswap_session_away")
public func hotswapSessionAway(_ s: game_id, _ t: UnsafePointer<game_state_table>?) { Module<__Type__>.sessionAway(s, t) }

@_cdecl("hotswap_session_back")
public func hotswapSessionBack(_ s: game_id, _ t: UnsafePointer<game_state_table>?) { Module<__Type__>.sessionBack(s, t) }

@_cdecl("hotswap_migrate")
public func hotswapMigrate(_ m: UnsafePointer<game_migration>?, _ e: game_id, _ t: UnsafePointer<game_state_table>?) -> Int32 {
    Module<__Type__>.migrate(m, e, t)
}

@_cdecl("hotswap_migrate_down")
public func hotswapMigrateDown(_ m: UnsafePointer<game_migration>?, _ e: game_id, _ t: UnsafePointer<game_state_table>?)
    -> Int32
{
    Module<__Type__>.migrateDown(m, e, t)
}
