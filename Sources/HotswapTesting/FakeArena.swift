import GameABI

/// Packs a generational `game_id` (layout in game_abi.h).
func fakeID(kind: UInt32, generation: UInt32, index: Int) -> game_id {
    UInt64(kind) << 56 | UInt64(generation & 0x00FF_FFFF) << 32 | UInt64(UInt32(index))
}

/// The kind byte of an id (GAME_KIND_*).
func kindOf(_ id: game_id) -> UInt32 { UInt32(id >> 56) }

/// Slots of one kind of entity addressed by generational ids: removing an
/// entity bumps its slot's generation, so every id that named it is stale
/// from then on (refused, never reused for another entity).
struct FakeArena<Element> {
    let kind: UInt32
    private(set) var slots: [(generation: UInt32, value: Element?)] = []
    private var free: [Int] = []
    private(set) var count = 0

    init(kind: UInt32) { self.kind = kind }

    /// Slots ever made: the rows a store table needs.
    var capacity: Int { slots.count }

    mutating func insert(_ value: Element) -> game_id {
        let index: Int
        if let reused = free.popLast() {
            index = reused
            slots[index].value = value
        } else {
            index = slots.count
            slots.append((1, value))
        }
        count += 1
        return fakeID(kind: kind, generation: slots[index].generation, index: index)
    }

    /// The slot of a live entity, or nil for a stale, forged or other-kind id.
    func slot(of id: game_id) -> Int? {
        guard kindOf(id) == kind else { return nil }
        let index = Int(UInt32(truncatingIfNeeded: id))
        let generation = UInt32(truncatingIfNeeded: id >> 32) & 0x00FF_FFFF
        guard index < slots.count, slots[index].value != nil, slots[index].generation == generation else { return nil }
        return index
    }

    func contains(_ id: game_id) -> Bool { slot(of: id) != nil }

    subscript(id: game_id) -> Element? {
        get { slot(of: id).flatMap { slots[$0].value } }
        set {
            guard let index = slot(of: id), let newValue else { return }
            slots[index].value = newValue
        }
    }

    @discardableResult
    mutating func remove(_ id: game_id) -> Element? {
        guard let index = slot(of: id) else { return nil }
        let value = slots[index].value
        slots[index].value = nil
        let next = (slots[index].generation + 1) & 0x00FF_FFFF
        slots[index].generation = next == 0 ? 1 : next
        free.append(index)
        count -= 1
        return value
    }

    /// Puts a removed entity back in its old slot under the slot's new
    /// generation (a restart numbering entities again): its old id is stale.
    mutating func reinsert(_ value: Element, atSlotOf old: game_id) -> game_id {
        let index = Int(UInt32(truncatingIfNeeded: old))
        free.removeAll { $0 == index }
        slots[index].value = value
        count += 1
        return fakeID(kind: kind, generation: slots[index].generation, index: index)
    }

    /// Every live id, in slot order.
    var ids: [game_id] {
        slots.indices.compactMap { index in
            slots[index].value == nil ? nil : fakeID(kind: kind, generation: slots[index].generation, index: index)
        }
    }

    /// The live id in `slot`, if any.
    func id(ofSlot index: Int) -> game_id? {
        guard index < slots.count, slots[index].value != nil else { return nil }
        return fakeID(kind: kind, generation: slots[index].generation, index: index)
    }
}
