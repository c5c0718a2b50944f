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
