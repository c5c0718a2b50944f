import GameABI

/// A game module as the fake host sees it: one optional Swift closure per
/// export of game_abi.h, with the C signatures' pointer types (never NULL
/// when the fake calls them).
///
/// Write one inline in a test, calling the state table's function pointers
/// as a C module would, or wrap a built `.so` with `load(libraryAt:)`. Like
/// a real module it must keep no state between calls (the closures are
/// `@Sendable`): every game value lives in the host's fields.
public struct FakeModule: Sendable {
    /// `hotswap_describe(describer)`.
    public typealias Describe = @Sendable (UnsafePointer<game_describer>) -> Int32
    /// `hotswap_handle(message, table)`.
    public typealias Handle = @Sendable (UnsafePointer<game_message>, UnsafePointer<game_state_table>) -> Int32
    /// `hotswap_session_closed`, `_away`, `_back`: `(session, table)`.
    public typealias SessionHook = @Sendable (game_id, UnsafePointer<game_state_table>) -> Void
    /// `hotswap_migrate` and `hotswap_migrate_down`: `(migration, entity, table)`.
    public typealias Migrate = @Sendable (UnsafePointer<game_migration>, game_id, UnsafePointer<game_state_table>) -> Int32
    /// `hotswap_load(table, from_version, length)`.
    public typealias Load = @Sendable (UnsafePointer<game_state_table>, UnsafePointer<UInt8>?, Int) -> Int32
    /// `hotswap_timer(event, table)`.
    public typealias Timer = @Sendable (UnsafePointer<game_timer_event>, UnsafePointer<game_state_table>) -> Int32
    /// `hotswap_tick(tick, table)`.
    public typealias Tick = @Sendable (UnsafePointer<game_tick>, UnsafePointer<game_state_table>) -> Int32
    /// `hotswap_auth(result, table)`.
    public typealias Auth = @Sendable (UnsafePointer<game_auth_result>, UnsafePointer<game_state_table>) -> Int32

    /// What `hotswap_abi_version` returns; the host refuses another major
    /// or a newer minor, as the engine does.
    public var abiVersion: UInt32
    public var describe: Describe?
    public var handle: Handle?
    public var sessionClosed: SessionHook?
    public var migrate: Migrate?
    public var migrateDown: Migrate?
    public var load: Load?
    public var timer: Timer?
    public var tick: Tick?
    public var auth: Auth?
    public var sessionAway: SessionHook?
    public var sessionBack: SessionHook?

    public init(abiVersion: UInt32 = UInt32(GAME_ABI_VERSION), describe: Describe? = nil, handle: Handle? = nil,
                sessionClosed: SessionHook? = nil, migrate: Migrate? = nil, migrateDown: Migrate? = nil,
                load: Load? = nil, timer: Timer? = nil, tick: Tick? = nil, auth: Auth? = nil,
                sessionAway: SessionHook? = nil, sessionBack: SessionHook? = nil)
    {
        self.abiVersion = abiVersion
        self.describe = describe
        self.handle = handle
        self.sessionClosed = sessionClosed
        self.migrate = migrate
        self.migrateDown = migrateDown
        self.load = load
        self.timer = timer
        self.tick = tick
        self.auth = auth
        self.sessionAway = sessionAway
        self.sessionBack = sessionBack
    }
}
