import GameABI
import Testing
@testable import HotswapEngine

/// The engine's bookkeeping, in process: ids that go stale, and the store.
@Suite struct ArenaTests {
    @Test func removedIdsGoStaleAndSlotsAreReusedWithANewGeneration() {
        var arena = GenerationalArena<String>(kind: .session)
        let first = arena.insert("alice")
        #expect(arena[first] == "alice")
        arena.remove(first)
        #expect(arena[first] == nil)
        let second = arena.insert("bob")
        #expect(second.index == first.index)
        #expect(second.generation != first.generation)
        #expect(arena[first] == nil)
        #expect(arena[second] == "bob")
        #expect(arena.remove(first) == nil)
        #expect(arena.count == 1)
    }

    @Test func idsOfAnotherKindOrForgedAreRefused() {
        var sessions = GenerationalArena<Int>(kind: .session)
        let id = sessions.insert(1)
        let asRoom = GameID(kind: .room, generation: id.generation, index: id.index)
        #expect(sessions[asRoom] == nil)
        #expect(sessions[GameID(raw: 0)] == nil)
        #expect(sessions[GameID(kind: .session, generation: id.generation, index: 99)] == nil)
        #expect(GameID.global.kind == .global)
    }
}

@Suite struct StateStoreTests {
    private let name = FieldSpec(kind: .session, name: "name", type: .string, unique: true, defaultInt: 0, defaultString: [])
    private let score = FieldSpec(kind: .session, name: "score", type: .int, unique: false, defaultInt: 7, defaultString: [])

    @Test func newRowsAndResetRowsHoldDefaults() throws {
        var store = StateStore()
        let bindings = try store.bind([name, score])
        store.ensureRows(.session, 2)
        #expect(store.int(bindings[1], row: 1) == 7)
        store.setInt(bindings[1], row: 1, 42)
        #expect(store.int(bindings[1], row: 1) == 42)
        store.resetRow(.session, 1)
        #expect(store.int(bindings[1], row: 1) == 7)
    }

    @Test func uniqueStringsAreIndexedAndFreedOnReset() throws {
        var store = StateStore()
        let field = try store.bind([name])[0]
        store.ensureRows(.session, 2)
        let alice = Array("alice".utf8)
        #expect(alice.withUnsafeBytes { store.setString(field, row: 0, $0) })
        #expect(!alice.withUnsafeBytes { store.setString(field, row: 1, $0) })
        #expect(alice.withUnsafeBytes { store.row(field, holding: $0) } == 0)
        store.resetRow(.session, 0)
        #expect(alice.withUnsafeBytes { store.row(field, holding: $0) } == nil)
        #expect(alice.withUnsafeBytes { store.setString(field, row: 1, $0) })
    }

    @Test func aLaterModuleFindsTheValuesAnEarlierOneWrote() throws {
        var store = StateStore()
        let first = try store.bind([name, score])
        store.ensureRows(.session, 1)
        store.setInt(first[1], row: 0, 5)
        // Another module declaring the same fields in another order.
        let second = try store.bind([score, name])
        #expect(store.int(second[0], row: 0) == 5)
    }

    @Test func aFieldRetypedIsRefusedAndNothingChanges() throws {
        var store = StateStore()
        _ = try store.bind([score])
        var retyped = score
        retyped.type = .string
        #expect(throws: SchemaError.typeChanged(kind: .session, name: "score", from: .int, to: .string)) {
            try store.bind([name, retyped])
        }
        #expect(store.fieldNames(.session) == ["score:int"])
    }

    @Test func duplicateFieldsAreRefused() throws {
        var store = StateStore()
        #expect(throws: SchemaError.duplicate(kind: .session, name: "score")) { try store.bind([score, score]) }
    }
}

/// The loop's busy-poll window: grows under dense traffic, falls to 0 under
/// sparse traffic, and never spins when turned off.
@Suite struct BusyPollTests {
    private let us: UInt64 = 1000

    /// Replays I/O at `gap` intervals with spin turns every microsecond in
    /// between; returns the policy after `count` arrivals.
    private func replay(_ policy: inout BusyPoll, gap: UInt64, count: Int, start: UInt64 = 1_000_000) -> UInt64 {
        var now = start
        for _ in 0..<count {
            _ = policy.afterPoll(active: true, now: now)
            var t = now + us
            while policy.spinning && t < now + gap {
                _ = policy.afterPoll(active: false, now: t)
                t += us
            }
            now += gap
        }
        return now
    }

    @Test func denseTrafficKeepsTheLoopSpinning() {
        var policy = BusyPoll(maxWindow: 50 * us)
        _ = replay(&policy, gap: 10 * us, count: 20)
        #expect(policy.window >= 10 * us)
        #expect(policy.spinning)
    }

    @Test func sparseTrafficStopsSpinning() {
        var policy = BusyPoll(maxWindow: 50 * us)
        let now = replay(&policy, gap: 10 * us, count: 20)
        _ = replay(&policy, gap: 1000 * us, count: 20, start: now)
        #expect(policy.window == 0)
        let spins = policy.afterPoll(active: true, now: 1_000_000_000)
        #expect(!spins)
    }

    @Test func windowNeverPassesTheMaximumAndOffMeansOff() {
        var policy = BusyPoll(maxWindow: 20 * us)
        _ = replay(&policy, gap: 5 * us, count: 100)
        #expect(policy.window <= 20 * us)
        var off = BusyPoll(maxWindow: 0)
        _ = replay(&off, gap: 5 * us, count: 100)
        #expect(off.window == 0 && !off.spinning)
    }
}

/// The rate limiter's fan-out charge and the descriptor cap, as arithmetic.
@Suite struct FloodArithmeticTests {
    @Test func fanOutIsChargedInTokensAndItsDebtIsPaidBeforeTheNextRequest() {
        var limiter = RateLimiter(now: 0, burst: 10)
        func admit(_ now: UInt64) -> Bool { limiter.admit(now: now, rate: 100, burst: 10) }
        #expect(admit(0))
        // 4,096 bytes per token: 40,960 bytes are 10 tokens; 9 were left.
        limiter.charge(fanOut: 40_960, bytesPerToken: 4096, rate: 100, burst: 10)
        #expect(limiter.milliTokens == -1000)
        #expect(!admit(0))
        // 100 tokens a second: 20 ms pay the debt and earn one request.
        #expect(!admit(19))
        #expect(admit(20))
        // A debt is at most one burst; off with 0 bytes per token or no rate.
        limiter.charge(fanOut: 1 << 30, bytesPerToken: 4096, rate: 100, burst: 10)
        #expect(limiter.milliTokens == -10_000)
        var free = RateLimiter(now: 0, burst: 10)
        free.charge(fanOut: 1 << 20, bytesPerToken: 0, rate: 100, burst: 10)
        free.charge(fanOut: 1 << 20, bytesPerToken: 4096, rate: 0, burst: 10)
        #expect(free.milliTokens == 10_000)
        // Small fan-outs add up in thousandths.
        free.charge(fanOut: 2048, bytesPerToken: 4096, rate: 100, burst: 10)
        #expect(free.milliTokens == 9_500)
    }

    @Test func theGameCapLeavesTheReserveAndWhatWasOpenAtStart() {
        #expect(DescriptorReserve.gameConnectionCap(fileLimit: 1024, open: 24, reserve: 32) == 968)
        #expect(DescriptorReserve.gameConnectionCap(fileLimit: 40, open: 24, reserve: 32) == 1)
        #expect(DescriptorReserve.gameConnectionCap(fileLimit: nil, open: 24, reserve: 32) == Int.max)
        #expect(DescriptorReserve.gameConnectionCap(fileLimit: 1024, open: nil, reserve: 32) == 1024 - 64 - 32)
    }
}
