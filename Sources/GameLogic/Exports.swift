import GameABI
import Gems
import LogicKit

// The C entry points the engine resolves with dlsym, each forwarding to the
// SDK's `Module<Gems>`. Everything else lives in Sources/Games/Gems; no
// Swift type crosses into the engine.

@_cdecl("hotswap_abi_version")
public func hotswapABIVersion() -> UInt32 { Module<Gems>.abiVersion() }

@_cdecl("hotswap_describe")
public func hotswapDescribe(_ d: UnsafePointer<game_describer>?) -> Int32 { Module<Gems>.describe(d) }

@_cdecl("hotswap_handle")
public func hotswapHandle(_ m: UnsafePointer<game_message>?, _ t: UnsafePointer<game_state_table>?) -> Int32 {
    Module<Gems>.handle(m, t)
}

@_cdecl("hotswap_session_closed")
public func hotswapSessionClosed(_ s: game_id, _ t: UnsafePointer<game_state_table>?) { Module<Gems>.sessionClosed(s, t) }

@_cdecl("hotswap_timer")
public func hotswapTimer(_ e: UnsafePointer<game_timer_event>?, _ t: UnsafePointer<game_state_table>?) -> Int32 {
    Module<Gems>.timer(e, t)
}

@_cdecl("hotswap_tick")
public func hotswapTick(_ k: UnsafePointer<game_tick>?, _ t: UnsafePointer<game_state_table>?) -> Int32 {
    Module<Gems>.tick(k, t)
}

@_cdecl("hotswap_auth")
public func hotswapAuth(_ r: UnsafePointer<game_auth_result>?, _ t: UnsafePointer<game_state_table>?) -> Int32 {
    Module<Gems>.auth(r, t)
}

@_cdecl("hotswap_session_away")
public func hotswapSessionAway(_ s: game_id, _ t: UnsafePointer<game_state_table>?) { Module<Gems>.sessionAway(s, t) }

@_cdecl("hotswap_session_back")
public func hotswapSessionBack(_ s: game_id, _ t: UnsafePointer<game_state_table>?) { Module<Gems>.sessionBack(s, t) }
