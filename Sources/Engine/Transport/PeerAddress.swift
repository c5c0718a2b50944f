import CLibUV
import Glibc
import UVKit

/// A client's IP address, without its port: what per-address limits count
/// (`--max-connections-per-ip`, the admin port's AUTH throttle). An IPv4
/// address and the same one mapped into IPv6 (`::ffff:a.b.c.d`, what a
/// dual-stack listener sees) are the same key.
struct PeerAddress: Hashable, Sendable {
    /// 16 bytes: IPv6, or IPv4 in its mapped form.
    private let high: UInt64
    private let low: UInt64

    /// The address of the other end of `client`; nil when the kernel has
    /// none (an adopted socket's peer gone, a unix socket).
    init?(of client: UnsafeMutablePointer<uv_tcp_t>) {
        var storage = sockaddr_storage()
        var length = Int32(MemoryLayout<sockaddr_storage>.size)
        guard withSocketAddress(&storage, { uv_tcp_getpeername(client, $0, &length) }) == 0 else { return nil }
        var bytes = [UInt8](repeating: 0, count: 16)
        switch Int32(storage.ss_family) {
        case AF_INET:
            withUnsafeBytes(of: storage) { raw in
                // sockaddr_in: family (2), port (2), address (4).
                bytes[10] = 0xFF
                bytes[11] = 0xFF
                for index in 0..<4 { bytes[12 + index] = raw[4 + index] }
            }
        case AF_INET6:
            withUnsafeBytes(of: storage) { raw in
                // sockaddr_in6: family (2), port (2), flow info (4), address (16).
                for index in 0..<16 { bytes[index] = raw[8 + index] }
            }
        default:
            return nil
        }
        high = bytes[0..<8].reduce(0) { $0 << 8 | UInt64($1) }
        low = bytes[8..<16].reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// 127.0.0.0/8 and ::1: this machine (load tests, a local proxy).
    var isLoopback: Bool {
        if high == 0 && low == 1 { return true }
        return high == 0 && low >> 32 == 0xFFFF && (low >> 24) & 0xFF == 127
    }
}
