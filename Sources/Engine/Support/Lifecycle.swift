import Logging

/// The states of one moving part of the engine (a reload, ...): one enum
/// whose cases carry what exists only in that state, so a combination of
/// flags that should never happen cannot be written down.
///
/// After swift-nio's channel lifecycle: the part changes state only through
/// `Lifecycle.move(to:)`, which checks the move against `allows`.
protocol LifecycleState {
    /// The part, as STATUS names it (`reload`).
    static var part: String { get }
    /// This state, as STATUS shows it (`loading`).
    var name: String { get }
    /// Every state's name, the initial one first.
    static var names: [String] { get }
    /// The moves allowed, as "from>to" names: the table the diagram in
    /// each part's file draws (LifecycleTests checks its shape).
    static var moves: Set<String> { get }
}

extension LifecycleState {
    /// Whether the part may go from this state to `next`.
    func allows(_ next: Self) -> Bool { Self.moves.contains("\(name)>\(next.name)") }
}

/// A part's current state and its one transition function.
///
/// An illegal move is an engine bug: it is logged at critical level with
/// both states, counted (STATUS `engine_bugs=`, `hotswap_engine_bugs_total`),
/// and stops a debug build (`assertionFailure`), so a test that reaches
/// one fails. A release build then takes the move anyway: the code that
/// asked for it knows more of what just happened than the table does, and
/// stopping the server would drop every player for a bookkeeping error.
struct Lifecycle<State: LifecycleState> {
    private(set) var state: State
    /// Illegal moves seen so far.
    private(set) var illegalMoves = 0

    init(_ state: State) { self.state = state }

    mutating func move(to next: State, logger: Logger) {
        if !state.allows(next) {
            bug("went from \(state.name) to \(next.name), which its lifecycle does not allow", logger: logger)
        }
        state = next
    }

    /// An event the current state cannot have (a worker's reply when none
    /// was out): the same engine bug as an illegal move; the state stays.
    mutating func bug(_ what: String, logger: Logger) {
        illegalMoves += 1
        logger.critical("engine bug: \(State.part) in state \(state.name): \(what)")
        assertionFailure("\(State.part) in state \(state.name): \(what)")
    }
}
