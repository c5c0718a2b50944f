import GameABI

/// Every pending timer and every room's tick: engine data, never a pointer
/// into a module (game_abi.h, "Timers and ticks").
///
/// A timer is a record (owner, event name, payload, absolute deadline,
/// period). When it comes due the clock (`TimerClock`) hands the record to
/// whichever module is loaded then, which is what lets a RELOAD change the
/// code that handles timers set before it, and an engine UPGRADE hand them
/// over as data (Erlang's `send_after`; skynet, which stores a closure, keeps
/// calling the old code after a hot fix).
///
/// Layout, for 100,000 timers and more without a pause:
/// - `entries`: one slot per timer, reused (last freed, first reused), with
///   a generation so a cancelled timer's id never names its successor;
/// - `heap`: a binary min-heap of slot indexes ordered by (due, seq), each
///   entry knowing its place in it, so the next deadline is O(1), and a set,
///   a cancel and a fire are O(log n);
/// - `owners`: per owner, an intrusive doubly linked list through the
///   slots, so a timer ends with its owner in O(its timers), and a room's
///   tick and batching mode, indexed by the owner's slot.
///
/// A slot's bytes (event name then payload) keep their capacity when the
/// slot is freed: a timer set again in a reused slot, and every fire, period
/// or tick, allocate nothing (`tools/alloc-check.py`).
///
/// Times are nanoseconds on the engine's monotonic clock, passed in: the
/// table never reads a clock, so tests drive it with virtual time.
struct TimerTable {
    /// What a slot holds.
    enum Kind: UInt8 {
        /// A module's timer (`timer_set`): `hotswap_timer`.
        case timer = 1
        /// A room's tick (`room_set_tick_rate`): `hotswap_tick`.
        case tick = 2
    }

    /// One timer or tick.
    struct Entry {
        /// Bumped when the slot is freed; 0 before first use.
        var generation: UInt32 = 0
        var live = false
        var kind = Kind.timer
        /// Cancelled inside the module call in progress: out of the heap,
        /// freed when the call commits, put back if it is undone.
        var detached = false
        var owner: UInt64 = 0
        /// Absolute deadline (ns).
        var due: UInt64 = 0
        /// 0: one-shot.
        var period: UInt64 = 0
        /// Order of setting: ties on `due` fire in the order they were set.
        var seq: UInt64 = 0
        /// Times fired; a tick's number (skipped ticks included).
        var fired: UInt64 = 0
        /// When a tick last called the module (ns), for `since_last_ms`.
        var lastCall: UInt64 = 0
        /// Place in `heap`; -1 while not in it (firing, detached, free).
        var heapIndex: Int32 = -1
        var ownerPrev: Int32 = -1
        var ownerNext: Int32 = -1
        var eventLength: Int = 0
        /// The event name, then the payload.
        var bytes: [UInt8] = []
    }

    /// A room's (or any owner's) time: its timers, its tick, its batching.
    struct OwnerTime: Equatable {
        var head: Int32 = -1
        var count: Int32 = 0
        /// The slot of the room's tick entry, -1 when it does not tick.
        var tick: Int32 = -1
        var batching = false
    }

    /// Why a timer could not be set.
    enum Refusal: Error { case limit, ownerLimit }

    let maxTimers: Int
    let maxPerOwner: Int
    private(set) var entries: [Entry] = []
    private var free: [Int32] = []
    private(set) var heap: [Int32] = []
    /// By owner kind (GAME_KIND_GLOBAL ... GAME_KIND_PLAYER), by owner slot.
    private(set) var owners: [[OwnerTime]] = Array(repeating: [], count: 5)
    private var nextSeq: UInt64 = 0
    /// The slot whose module call is running (`beginFiring`), or -1.
    private(set) var firing: Int32 = -1
    /// Slots detached in the call in progress.
    private var detachedInCall: [Int32] = []
    /// Live module timers (ticks are not counted: `tickingRooms`).
    private(set) var timerCount = 0
    private(set) var tickingRooms = 0
    /// Live timers owned by players or the global entity: these are stored.
    private(set) var durableCount = 0
    /// Bumped whenever a durable timer is set, changed or ends: the
    /// write-behind rewrites them when it moved since it last did.
    private(set) var durableVersion: UInt64 = 0

    init(maxTimers: Int, maxPerOwner: Int) {
        self.maxTimers = maxTimers
        self.maxPerOwner = maxPerOwner
        heap.reserveCapacity(64)
        detachedInCall.reserveCapacity(8)
    }

    // MARK: - Ids

    static func id(slot: Int32, generation: UInt32) -> GameID {
        GameID(raw: UInt64(GAME_KIND_TIMER) << 56 | UInt64(generation & GameID.generationMask) << 32 | UInt64(UInt32(slot)))
    }

    func id(ofSlot slot: Int32) -> GameID { TimerTable.id(slot: slot, generation: entries[Int(slot)].generation) }

    /// The slot of a live timer (not a tick), or nil for a stale or forged id.
    func slot(of id: GameID) -> Int32? {
        guard id.raw >> 56 == UInt64(GAME_KIND_TIMER) else { return nil }
        let index = Int(id.index)
        guard index < entries.count, entries[index].live, !entries[index].detached, entries[index].kind == .timer,
            entries[index].generation == id.generation
        else { return nil }
        return Int32(index)
    }

    /// The deadline of the next timer or tick, if any.
    var nextDue: UInt64? { heap.isEmpty ? nil : entries[Int(heap[0])].due }

    /// Whether the owner's timers are stored in the database.
    static func isDurable(owner: UInt64) -> Bool {
        let kind = owner >> 56
        return kind == UInt64(GAME_KIND_PLAYER) || kind == UInt64(GAME_KIND_GLOBAL)
    }

    // MARK: - Setting and cancelling

    /// Adds a timer; `owner` must be live (World checks it).
    mutating func set(owner: GameID, kind: Kind = .timer, event: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer,
                      due: UInt64, period: UInt64, fired: UInt64 = 0) throws(Refusal) -> Int32
    {
        if kind == .timer {
            guard timerCount < maxTimers else { throw .limit }
            guard Int(ownerTime(owner).count) < maxPerOwner else { throw .ownerLimit }
        }
        let slot: Int32
        if let reused = free.popLast() {
            slot = reused
        } else {
            slot = Int32(entries.count)
            entries.append(Entry())
            entries[Int(slot)].generation = 1
        }
        nextSeq &+= 1
        let index = Int(slot)
        entries[index].live = true
        entries[index].kind = kind
        entries[index].detached = false
        entries[index].owner = owner.raw
        entries[index].due = due
        entries[index].period = period
        entries[index].seq = nextSeq
        entries[index].fired = fired
        entries[index].lastCall = 0
        entries[index].eventLength = event.count
        entries[index].bytes.removeAll(keepingCapacity: true)
        entries[index].bytes.append(contentsOf: event)
        entries[index].bytes.append(contentsOf: payload)
        attach(slot)
        push(slot)
        return slot
    }

    /// Takes a timer or tick out: at once, or (`inCall`) detached until the
    /// call in progress commits (`commitCall`) or is undone (`reattach`).
    mutating func cancel(slot: Int32, inCall: Bool) {
        guard entries[Int(slot)].live, !entries[Int(slot)].detached else { return }
        if inCall {
            detach(slot)
            entries[Int(slot)].detached = true
            removeFromHeap(slot)
            detachedInCall.append(slot)
        } else {
            release(slot)
        }
    }

    /// Undoes a cancel made in a call that faulted.
    mutating func reattach(_ slot: Int32) {
        guard entries[Int(slot)].live, entries[Int(slot)].detached else { return }
        entries[Int(slot)].detached = false
        attach(slot)
        if slot != firing { push(slot) }
    }

    /// The call in progress kept its changes: what it cancelled goes.
    mutating func commitCall() {
        guard !detachedInCall.isEmpty else { return }
        for slot in detachedInCall where entries[Int(slot)].live && entries[Int(slot)].detached { release(slot) }
        detachedInCall.removeAll(keepingCapacity: true)
    }

    /// The call was undone: what it cancelled was reattached by the journal.
    mutating func forgetCall() { detachedInCall.removeAll(keepingCapacity: true) }

    /// Ends every timer and the tick of `owner` (it went away).
    mutating func removeAll(owner: GameID) {
        guard let kind = ownerKind(owner), Int(owner.index) < owners[kind].count else { return }
        while owners[kind][Int(owner.index)].head >= 0 {
            release(owners[kind][Int(owner.index)].head)
        }
        owners[kind][Int(owner.index)].batching = false
    }

    /// Frees a slot: out of the heap and its owner's list, id stale.
    mutating func release(_ slot: Int32) {
        let index = Int(slot)
        guard entries[index].live else { return }
        if !entries[index].detached { detach(slot) }
        removeFromHeap(slot)
        entries[index].live = false
        entries[index].detached = false
        // Payloads beyond a few hundred bytes are not kept on the free list.
        if entries[index].bytes.capacity > 512 { entries[index].bytes = [] }
        let next = (entries[index].generation + 1) & GameID.generationMask
        entries[index].generation = next
        if next != 0 { free.append(slot) }
    }

    /// Counts a slot in and links it to its owner (and as its room's tick).
    private mutating func attach(_ slot: Int32) {
        linkOwner(slot)
        let (kind, ownerRaw) = (entries[Int(slot)].kind, entries[Int(slot)].owner)
        if kind == .timer {
            timerCount += 1
            if TimerTable.isDurable(owner: ownerRaw) { durableCount += 1; durableVersion &+= 1 }
        } else {
            tickingRooms += 1
            let owner = GameID(raw: ownerRaw)
            if let kind = ownerKind(owner) { owners[kind][Int(owner.index)].tick = slot }
        }
    }

    /// The reverse of `attach`.
    private mutating func detach(_ slot: Int32) {
        unlinkOwner(slot)
        let (kind, ownerRaw) = (entries[Int(slot)].kind, entries[Int(slot)].owner)
        if kind == .timer {
            timerCount -= 1
            if TimerTable.isDurable(owner: ownerRaw) { durableCount -= 1; durableVersion &+= 1 }
        } else {
            tickingRooms -= 1
            let owner = GameID(raw: ownerRaw)
            if let kind = ownerKind(owner), owners[kind][Int(owner.index)].tick == slot {
                owners[kind][Int(owner.index)].tick = -1
            }
        }
    }

    // MARK: - Ticks and batching (rooms)

    /// The room's tick entry, -1 when it does not tick.
    func tickSlot(of room: GameID) -> Int32 { ownerTime(room).tick }

    /// Starts a room's tick (the caller cancelled any previous one):
    /// `period` ns, first due at `due`. Returns the tick slot.
    mutating func startTick(room: GameID, period: UInt64, due: UInt64, number: UInt64 = 0) -> Int32 {
        // Cannot throw: ticks are not counted against the timer limits.
        (try? set(owner: room, kind: .tick, event: UnsafeRawBufferPointer(start: nil, count: 0),
                  payload: UnsafeRawBufferPointer(start: nil, count: 0), due: due, period: period,
                  fired: number)) ?? -1
    }

    func isBatching(_ room: GameID) -> Bool { ownerTime(room).batching }

    mutating func setBatching(_ room: GameID, _ on: Bool) {
        let kind = Int(GAME_KIND_ROOM)
        growOwners(kind, Int(room.index))
        owners[kind][Int(room.index)].batching = on
    }

    // MARK: - Firing

    /// The slot due first if it is due at `now`; it leaves the heap and is
    /// the firing slot until `endFiring`.
    mutating func beginFiring(now: UInt64) -> Int32? {
        guard let first = heap.first, entries[Int(first)].due <= now else { return nil }
        removeFromHeap(first)
        firing = first
        return first
    }

    /// After the firing slot's call: a one-shot timer is spent, a cancelled
    /// one freed, a periodic one goes back on its grid (`nextDue`), and a
    /// slot whose owner went away meanwhile is already free.
    mutating func endFiring(nextDue: UInt64?) {
        let slot = firing
        firing = -1
        guard slot >= 0, entries[Int(slot)].live else { return }
        if entries[Int(slot)].detached || nextDue == nil {
            release(slot)
            return
        }
        entries[Int(slot)].due = nextDue!
        push(slot)
        if TimerTable.isDurable(owner: entries[Int(slot)].owner) { durableVersion &+= 1 }
    }

    /// In-place access to a slot.
    subscript(slot: Int32) -> Entry {
        get { entries[Int(slot)] }
        _modify { yield &entries[Int(slot)] }
    }

    /// Every live timer and tick, in slot order.
    func forEachLive(_ body: (Int32, Entry) -> Void) {
        for index in entries.indices where entries[index].live { body(Int32(index), entries[index]) }
    }

    // MARK: - Handoff (TimeHandoff.swift)

    /// Takes over a handed-over table: every slot where it was, deadlines
    /// from `now`. `isLiveOwner` checks each owner against the restored
    /// World (a timer whose owner did not come over is refused, not kept).
    mutating func restore(_ handoff: TimeHandoff, now: UInt64, isLiveOwner: (GameID) -> Bool) throws(HandoffError) {
        precondition(entries.isEmpty, "restored into a fresh table")
        var maxSeq: UInt64 = 0
        for (index, slot) in handoff.slots.enumerated() {
            var entry = Entry()
            entry.generation = slot.generation
            entries.append(entry)
            guard slot.live else {
                if slot.generation != 0 { free.append(Int32(index)) }
                continue
            }
            guard isLiveOwner(GameID(raw: slot.owner)) else {
                throw .invalid("timer slot \(index) belongs to \(GameID(raw: slot.owner)), which did not come over")
            }
            let kind = TimerTable.Kind(rawValue: slot.kind)!
            entries[index].live = true
            entries[index].kind = kind
            entries[index].owner = slot.owner
            entries[index].due = now + slot.remaining
            entries[index].period = slot.period
            entries[index].seq = slot.seq
            entries[index].fired = slot.fired
            entries[index].eventLength = slot.eventLength
            entries[index].bytes = slot.bytes
            maxSeq = max(maxSeq, slot.seq)
            attach(Int32(index))
            push(Int32(index))
        }
        // Free slots are reused last-freed first; the order within the
        // list is not carried, and does not need to be (ids stay unique by
        // generation).
        free.reverse()
        nextSeq = maxSeq
    }

    // MARK: - Owners

    private func ownerKind(_ owner: GameID) -> Int? {
        let kind = Int(owner.raw >> 56)
        return kind >= Int(GAME_KIND_GLOBAL) && kind <= Int(GAME_KIND_PLAYER) ? kind : nil
    }

    private func ownerTime(_ owner: GameID) -> OwnerTime {
        guard let kind = ownerKind(owner), Int(owner.index) < owners[kind].count else { return OwnerTime() }
        return owners[kind][Int(owner.index)]
    }

    private mutating func growOwners(_ kind: Int, _ index: Int) {
        if index >= owners[kind].count {
            owners[kind].append(contentsOf: repeatElement(OwnerTime(), count: index + 1 - owners[kind].count))
        }
    }

    private mutating func linkOwner(_ slot: Int32) {
        let owner = GameID(raw: entries[Int(slot)].owner)
        guard let kind = ownerKind(owner) else { return }
        let index = Int(owner.index)
        growOwners(kind, index)
        let head = owners[kind][index].head
        entries[Int(slot)].ownerPrev = -1
        entries[Int(slot)].ownerNext = head
        if head >= 0 { entries[Int(head)].ownerPrev = slot }
        owners[kind][index].head = slot
        owners[kind][index].count += 1
    }

    private mutating func unlinkOwner(_ slot: Int32) {
        let owner = GameID(raw: entries[Int(slot)].owner)
        guard let kind = ownerKind(owner) else { return }
        let index = Int(owner.index)
        let prev = entries[Int(slot)].ownerPrev
        let next = entries[Int(slot)].ownerNext
        if prev >= 0 { entries[Int(prev)].ownerNext = next } else { owners[kind][index].head = next }
        if next >= 0 { entries[Int(next)].ownerPrev = prev }
        entries[Int(slot)].ownerPrev = -1
        entries[Int(slot)].ownerNext = -1
        owners[kind][index].count -= 1
    }

    // MARK: - The heap, ordered by (due, seq)

    @inline(__always)
    private func before(_ a: Int32, _ b: Int32) -> Bool {
        let (x, y) = (Int(a), Int(b))
        return entries[x].due < entries[y].due || (entries[x].due == entries[y].due && entries[x].seq < entries[y].seq)
    }

    private mutating func push(_ slot: Int32) {
        entries[Int(slot)].heapIndex = Int32(heap.count)
        heap.append(slot)
        siftUp(heap.count - 1)
    }

    private mutating func removeFromHeap(_ slot: Int32) {
        let position = Int(entries[Int(slot)].heapIndex)
        guard position >= 0 else { return }
        entries[Int(slot)].heapIndex = -1
        let last = heap.removeLast()
        guard position < heap.count else { return }
        heap[position] = last
        entries[Int(last)].heapIndex = Int32(position)
        siftUp(position)
        siftDown(Int(entries[Int(last)].heapIndex))
    }

    private mutating func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard before(heap[child], heap[parent]) else { break }
            swapAt(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            guard left < heap.count else { break }
            var smallest = left
            if left + 1 < heap.count && before(heap[left + 1], heap[left]) { smallest = left + 1 }
            guard before(heap[smallest], heap[parent]) else { break }
            swapAt(parent, smallest)
            parent = smallest
        }
    }

    private mutating func swapAt(_ a: Int, _ b: Int) {
        heap.swapAt(a, b)
        entries[Int(heap[a])].heapIndex = Int32(a)
        entries[Int(heap[b])].heapIndex = Int32(b)
    }
}
