import Glibc

/// A growable byte buffer in malloc'd memory whose address can be handed to
/// `uv_write`.
///
/// Why not `[UInt8]`: libuv reads the bytes after `uv_write` returns, and a
/// pointer obtained from `Array.withUnsafeBytes` must not outlive the
/// closure. This buffer owns its memory explicitly, and the connection
/// guarantees it is neither grown nor freed while a write uses it (see
/// `StreamWriter`: a buffer in flight is never appended to).
///
/// Memory stays allocated between turns so a busy connection does not call
/// malloc per reply; `trim` gives back memory after a burst.
public struct OutputBuffer: ~Copyable {
    public private(set) var base: UnsafeMutablePointer<UInt8>? = nil
    public private(set) var count = 0
    public private(set) var capacity = 0

    public init() {}

    deinit { free(base) }

    public var isEmpty: Bool { count == 0 }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        reserve(count + bytes.count)
        (base! + count).update(from: source.assumingMemoryBound(to: UInt8.self), count: bytes.count)
        count += bytes.count
    }

    public mutating func append(byte: UInt8) {
        reserve(count + 1)
        base![count] = byte
        count += 1
    }

    public mutating func removeAll() { count = 0 }

    /// Forgets the bytes past `length` (a no-op when there are fewer).
    public mutating func truncate(to length: Int) { if length >= 0 && length < count { count = length } }

    /// Frees the memory when more than `limit` bytes are held for nothing.
    public mutating func trim(keeping limit: Int) {
        if count == 0 && capacity > limit {
            free(base)
            base = nil
            capacity = 0
        }
    }

    private mutating func reserve(_ needed: Int) {
        guard needed > capacity else { return }
        var next = max(capacity * 2, 512)
        while next < needed { next *= 2 }
        guard let grown = realloc(base, next) else { fatalError("out of memory growing an output buffer") }
        base = grown.assumingMemoryBound(to: UInt8.self)
        capacity = next
    }
}
