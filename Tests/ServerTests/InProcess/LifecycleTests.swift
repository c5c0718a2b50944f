import Testing

@testable import HotswapEngine

/// The lifecycle tables (ReloadState.swift, FlushState.swift,
/// UpgradeState.swift). Every integration test enforces them too: an
/// illegal move stops a debug build (`Lifecycle.move`).
@Suite struct LifecycleTests {
    /// Every move names two real, different states; every state is
    /// reachable from the first; only the final ones cannot be left.
    private func checkShape<State: LifecycleState>(_: State.Type, final: Set<String>) {
        let names = Set(State.names)
        #expect(names.count == State.names.count, "\(State.part): a name twice")
        var entered: Set<String> = [State.names[0]]
        var left: Set<String> = []
        for move in State.moves {
            let ends = move.split(separator: ">").map(String.init)
            #expect(ends.count == 2 && names.contains(ends[0]) && names.contains(ends[1]), "\(State.part): \(move)")
            #expect(ends.first != ends.last, "\(State.part): \(move): a state does not move to itself")
            left.insert(ends[0])
            entered.insert(ends[1])
        }
        #expect(entered == names, "\(State.part): unreachable: \(names.subtracting(entered))")
        #expect(left == names.subtracting(final), "\(State.part): cannot be left: \(names.subtracting(left).subtracting(final))")
        for state in final { #expect(!State.moves.contains { $0.hasPrefix("\(state)>") }, "\(State.part): \(state) is final") }
    }

    @Test func theReloadTable() {
        checkShape(ReloadState.self, final: ["stopped"])
        // Nothing leaves the stopped states for a serving one.
        #expect(!ReloadState.moves.contains { $0.hasPrefix("stopped") && !$0.contains(">stopped") })
    }

    @Test func theFlushTable() {
        checkShape(FlushState.self, final: ["closed"])
        // Nothing is written or copied out once closed.
        #expect(!FlushState.moves.contains { $0.hasPrefix("closed") && !$0.contains(">closed") })
    }

    @Test func theUpgradeTable() {
        checkShape(UpgradeState.self, final: [])
        // A check never starts while the last upgrade's descriptors settle.
        #expect(!UpgradeState.moves.contains("settling>checking"))
    }

    @Test func theSessionLinkTable() {
        checkShape(SessionLink.self, final: ["closed"])
        // Only a drop makes a session away; only a RESUME brings it back.
        #expect(SessionLink.moves.filter { $0.hasSuffix(">away") } == ["connected>away"] as Set)
        #expect(SessionLink.moves.filter { $0.hasPrefix("away>") } == ["away>connected", "away>closed"] as Set)
    }

    @Test func busyAndTheLinkerLockFollowTheReloadState() {
        #expect(!ReloadState.idle.busy && !ReloadState.idle.workerMayHoldTheLinkerLock)
        #expect(ReloadState.stuck.busy && ReloadState.stuck.loadStuck && ReloadState.stuck.workerMayHoldTheLinkerLock)
        #expect(!ReloadState.stopped(.none).busy && !ReloadState.stopped(.none).loadStuck)
        #expect(ReloadState.stopped(.stuck).loadStuck && ReloadState.stopped(.stuck).busy)
    }
}
