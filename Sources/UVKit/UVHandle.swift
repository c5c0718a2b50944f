import CLibUV

/// libuv handle structs that start with `uv_handle_t`'s fields, so a pointer
/// to one may be viewed as a `uv_handle_t` (libuv's own C casts, made typed).
///
/// Every unchecked pointer cast the engine needs for libuv lives in this
/// file: callers see typed views (`.handle`, `.stream`) and never write
/// `assumingMemoryBound` themselves.
public protocol UVHandleType {}
/// Handles that are streams (`uv_stream_t` prefix): read, write, shutdown.
public protocol UVStreamType: UVHandleType {}

extension uv_handle_t: UVHandleType {}
extension uv_stream_t: UVStreamType {}
extension uv_tcp_t: UVStreamType {}
extension uv_pipe_t: UVStreamType {}
extension uv_timer_t: UVHandleType {}
extension uv_check_t: UVHandleType {}
extension uv_prepare_t: UVHandleType {}
extension uv_signal_t: UVHandleType {}
extension uv_fs_event_t: UVHandleType {}
extension uv_async_t: UVHandleType {}
extension uv_idle_t: UVHandleType {}
extension uv_process_t: UVHandleType {}
extension uv_poll_t: UVHandleType {}

extension UnsafeMutablePointer where Pointee: UVHandleType {
    /// Allocates an uninitialised handle; `closeAndFree` releases it.
    public static func allocateHandle() -> UnsafeMutablePointer<Pointee> { .allocate(capacity: 1) }

    /// The same handle as a generic `uv_handle_t`.
    public var handle: UnsafeMutablePointer<uv_handle_t> {
        UnsafeMutableRawPointer(self).assumingMemoryBound(to: uv_handle_t.self)
    }

    /// The handle's user data (`handle->data`).
    public var context: UnsafeMutableRawPointer? {
        get { handle.pointee.data }
        nonmutating set { handle.pointee.data = newValue }
    }

    /// True once `uv_close` has been called on it.
    public var isClosing: Bool { uv_is_closing(handle) != 0 }

    /// Closes the handle and frees its memory in the close callback, the
    /// only moment libuv guarantees it will not touch the handle again.
    /// Safe to call twice: a handle already closing is left alone.
    public func closeAndFree() {
        guard !isClosing else { return }
        handle.pointee.data = nil
        uv_close(handle) { handle in handle?.deallocate() }
    }
}

extension UnsafeMutablePointer where Pointee: UVStreamType {
    /// The same handle as a `uv_stream_t`.
    public var stream: UnsafeMutablePointer<uv_stream_t> {
        UnsafeMutableRawPointer(self).assumingMemoryBound(to: uv_stream_t.self)
    }
}

/// An object reachable from a C context pointer: a libuv handle or
/// request's `data`, a thread's start argument, a module's describer.
/// Every `Unmanaged` of the engine is here (nowhere else), so the two ways
/// of holding an object from C are written once:
/// - unretained (`pointer`, `object`): the owner guarantees the object
///   outlives the context (it closes the handle before it goes away);
/// - retained (`retainedPointer`, then exactly one `release`): the context
///   keeps the object alive until it is done with it.
public enum UVContext {
    @inlinable public static func pointer<T: AnyObject>(to object: T) -> UnsafeMutableRawPointer {
        Unmanaged.passUnretained(object).toOpaque()
    }

    @inlinable public static func object<T: AnyObject>(_ pointer: UnsafeMutableRawPointer?, as type: T.Type) -> T {
        Unmanaged<T>.fromOpaque(pointer!).takeUnretainedValue()
    }

    /// A +1 reference stored in `data`: the object cannot go away before
    /// `release` (for handles whose owner is the handle itself).
    @inlinable public static func retainedPointer<T: AnyObject>(to object: T) -> UnsafeMutableRawPointer {
        Unmanaged.passRetained(object).toOpaque()
    }

    @inlinable public static func release<T: AnyObject>(_ pointer: UnsafeMutableRawPointer, as type: T.Type) -> T {
        Unmanaged<T>.fromOpaque(pointer).takeRetainedValue()
    }
}

/// Parses an IPv4 or IPv6 literal into a socket address for libuv.
public func socketAddress(host: String, port: Int) -> sockaddr_storage? {
    var storage = sockaddr_storage()
    let parsed = withUnsafeMutableBytes(of: &storage) { raw -> Int32 in
        if uv_ip4_addr(host, Int32(port), raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self)) == 0 { return 0 }
        return uv_ip6_addr(host, Int32(port), raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self))
    }
    return parsed == 0 ? storage : nil
}

/// Calls `body` with `storage` as the `sockaddr` pointer libuv takes.
public func withSocketAddress<R>(_ storage: inout sockaddr_storage, _ body: (UnsafeMutablePointer<sockaddr>) -> R) -> R {
    withUnsafeMutablePointer(to: &storage) { body(UnsafeMutableRawPointer($0).assumingMemoryBound(to: sockaddr.self)) }
}

/// The port of an IPv4 or IPv6 socket address (same offset, network order).
public func port(of storage: sockaddr_storage) -> Int {
    withUnsafeBytes(of: storage) { raw in Int(UInt16(bigEndian: raw.load(fromByteOffset: 2, as: UInt16.self))) }
}
