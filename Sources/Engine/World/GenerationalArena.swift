/// Slots for one kind of entity, addressed by generational `GameID`s.
///
/// Removing an entity bumps its slot's generation, so every id that named it
/// stops resolving: a logic module holding an old id gets an error code, and
/// can never reach whoever took the slot next. Freed slots are reused
/// (last freed, first reused) so the arena's size follows the peak number of
/// live entities, and the state store's columns, indexed by slot, with it.
struct GenerationalArena<Element> {
    /// One slot: its generation, and its entity while it is alive.
    struct Slot {
        var generation: UInt32
        var value: Element?
    }

    let kind: EntityKind
    // Readable for an engine upgrade, which hands the slots over as they
    // are (World+Handoff.swift); only this file changes them.
    private(set) var slots: [Slot] = []
    /// Free slot indexes, the next to reuse last.
    private(set) var freeList: [UInt32] = []
    private(set) var count = 0

    init(kind: EntityKind) { self.kind = kind }

    /// The arena exactly as a previous engine left it (an engine upgrade):
    /// every live id still resolves, every stale one stays stale, and slots
    /// are reused in the same order. Throws when the slots and the free
    /// list contradict each other (a free list must name exactly the empty
    /// slots that are not retired, each once).
    init(kind: EntityKind, slots: [Slot], freeList: [UInt32]) throws(HandoffError) {
        var free = Set<UInt32>()
        for index in freeList {
            guard Int(index) < slots.count, slots[Int(index)].value == nil, slots[Int(index)].generation != 0,
                free.insert(index).inserted
            else { throw .invalid("\(kind) free list names slot \(index) wrongly") }
        }
        var live = 0
        for (index, slot) in slots.enumerated() {
            guard slot.generation & ~GameID.generationMask == 0 else { throw .invalid("\(kind) slot \(index) generation") }
            if slot.value != nil {
                guard slot.generation != 0 else { throw .invalid("\(kind) slot \(index) is live but retired") }
                live += 1
            } else if slot.generation != 0 && !free.contains(UInt32(index)) {
                throw .invalid("\(kind) slot \(index) is empty but not free")
            }
        }
        self.kind = kind
        self.slots = slots
        self.freeList = freeList
        count = live
    }

    /// Number of slots ever created: the row count the state store needs.
    var capacity: Int { slots.count }

    /// Stores `value` and returns its new id.
    mutating func insert(_ value: Element) -> GameID {
        let index: UInt32
        if let reused = freeList.popLast() {
            index = reused
            slots[Int(index)].value = value
        } else {
            index = UInt32(slots.count)
            slots.append(Slot(generation: 1, value: value))
        }
        count += 1
        return GameID(kind: kind, generation: slots[Int(index)].generation, index: index)
    }

    /// The slot index of a live entity, or nil for a stale, foreign or
    /// forged id.
    func slotIndex(of id: GameID) -> Int? {
        guard id.kind == kind else { return nil }
        let index = Int(id.index)
        guard index < slots.count else { return nil }
        let slot = slots[index]
        guard slot.value != nil, slot.generation == id.generation else { return nil }
        return index
    }

    func contains(_ id: GameID) -> Bool { slotIndex(of: id) != nil }

    /// The live entity with `id`.
    subscript(id: GameID) -> Element? {
        guard let index = slotIndex(of: id) else { return nil }
        return slots[index].value
    }

    /// In-place access to a live entity by slot index (from `slotIndex`).
    subscript(slot index: Int) -> Element {
        get { slots[index].value! }
        _modify { yield &slots[index].value! }
    }

    /// The id of the entity currently in slot `index`.
    func id(ofSlot index: Int) -> GameID {
        GameID(kind: kind, generation: slots[index].generation, index: UInt32(index))
    }

    /// The id of the live entity in slot `index`, nil when the slot is free.
    func liveID(ofSlot index: Int) -> GameID? {
        slots[index].value == nil ? nil : id(ofSlot: index)
    }

    /// Removes the entity; its id and every copy of it become stale.
    @discardableResult
    mutating func remove(_ id: GameID) -> Element? {
        guard let index = slotIndex(of: id) else { return nil }
        let value = slots[index].value
        slots[index].value = nil
        let next = (slots[index].generation + 1) & GameID.generationMask
        if next == 0 {
            // Every generation of this slot has been handed out: reusing it
            // would bring a very old id back to life, so retire the slot
            // (four bytes, after 16.7 million reuses).
            slots[index].generation = 0
        } else {
            slots[index].generation = next
            freeList.append(UInt32(index))
        }
        count -= 1
        return value
    }

    /// Ids of all live entities, in slot order.
    func forEachID(_ body: (GameID) -> Void) {
        for index in slots.indices where slots[index].value != nil {
            body(id(ofSlot: index))
        }
    }
}

extension GenerationalArena.Slot: Equatable where Element: Equatable {}
