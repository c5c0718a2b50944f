import GameABI

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a built module could not be wrapped.
public struct FakeModuleError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

extension FakeModule {
    /// Opens a built module (`RTLD_NOW | RTLD_LOCAL`, never closed: code the
    /// host may still call must stay mapped) and wraps its exports.
    /// Throws when it cannot be opened or lacks `hotswap_abi_version`,
    /// `hotswap_describe` or `hotswap_handle`.
    public static func load(libraryAt path: String) throws -> FakeModule {
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            throw FakeModuleError(description: "cannot open \(path): \(dlerror().map { String(cString: $0) } ?? "?")")
        }
        func symbol<T>(_ name: String, as type: T.Type) -> T? {
            dlsym(handle, name).map { unsafeBitCast($0, to: type) }
        }
        guard let version = symbol("hotswap_abi_version", as: hotswap_abi_version_fn.self),
            let describe = symbol("hotswap_describe", as: hotswap_describe_fn.self),
            let handleFn = symbol("hotswap_handle", as: hotswap_handle_fn.self)
        else {
            throw FakeModuleError(description: "\(path) lacks hotswap_abi_version, hotswap_describe or hotswap_handle")
        }
        var module = FakeModule(abiVersion: version())
        module.describe = { describe($0) }
        module.handle = { handleFn($0, $1) }
        if let f = symbol("hotswap_session_closed", as: hotswap_session_closed_fn.self) { module.sessionClosed = { f($0, $1) } }
        if let f = symbol("hotswap_migrate", as: hotswap_migrate_fn.self) { module.migrate = { f($0, $1, $2) } }
        if let f = symbol("hotswap_migrate_down", as: hotswap_migrate_down_fn.self) { module.migrateDown = { f($0, $1, $2) } }
        if let f = symbol("hotswap_load", as: hotswap_load_fn.self) { module.load = { f($0, $1, $2) } }
        if let f = symbol("hotswap_timer", as: hotswap_timer_fn.self) { module.timer = { f($0, $1) } }
        if let f = symbol("hotswap_tick", as: hotswap_tick_fn.self) { module.tick = { f($0, $1) } }
        if let f = symbol("hotswap_auth", as: hotswap_auth_fn.self) { module.auth = { f($0, $1) } }
        if let f = symbol("hotswap_session_away", as: hotswap_session_away_fn.self) { module.sessionAway = { f($0, $1) } }
        if let f = symbol("hotswap_session_back", as: hotswap_session_back_fn.self) { module.sessionBack = { f($0, $1) } }
        return module
    }
}
