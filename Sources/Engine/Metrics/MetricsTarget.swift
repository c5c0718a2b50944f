import Logging

/// What the metrics port needs of the engine: the numbers, the module
/// serving (its info series), whether it is ready and which loop turn it
/// is in (one rendering per turn). `Engine` is the one implementation.
protocol MetricsTarget: AnyObject {
    var now: UInt64 { get }
    var logger: Logger { get }
    var limits: Limits { get }
    /// `/readyz`: serving, and not shutting down.
    var ready: Bool { get }
    var shuttingDown: Bool { get }
    /// Loop turns so far (the transport's).
    var turns: UInt64 { get }
    /// Every number, now.
    func snapshot() -> EngineSnapshot
    /// The module serving (`hotswap_module_info`).
    var servingModule: LoadedModule { get }
}
