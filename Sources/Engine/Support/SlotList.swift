/// An object that knows its place in a `SlotList` (-1: in none).
protocol Slotted: AnyObject {
    var slot: Int { get set }
}

/// A list of live objects with O(1) insertion and removal: each element
/// keeps its index (`slot`), and a removed one's place is taken by the
/// last. Order is not kept. The transport's connections and the admin and
/// metrics sessions are kept this way (a close callback forgets its object
/// without a search through 10,000).
struct SlotList<Element: Slotted>: Sequence {
    private(set) var elements: [Element] = []

    var count: Int { elements.count }
    var isEmpty: Bool { elements.isEmpty }

    mutating func insert(_ element: Element) {
        element.slot = elements.count
        elements.append(element)
    }

    /// Removes `element` if it is in this list; false if it was not.
    @discardableResult
    mutating func remove(_ element: Element) -> Bool {
        let index = element.slot
        defer { element.slot = -1 }
        guard index >= 0, index < elements.count, elements[index] === element else { return false }
        let last = elements.removeLast()
        if index < elements.count {
            elements[index] = last
            last.slot = index
        }
        return true
    }

    func makeIterator() -> IndexingIterator<[Element]> { elements.makeIterator() }
}
