import Foundation
import Testing

/// The test client's own promises, checked against a plain socket: tests
/// that rely on them would prove nothing if they did not hold.
@Suite struct TestSupportTests {
    /// A listening socket on a free loopback port.
    private func listener() throws -> (socket: Int32, port: Int) {
        let listening = socket(AF_INET, streamSocketType, 0)
        guard listening >= 0 else { throw TestFailure("socket: \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(listening, pointer, length) == 0 && listen(listening, 4) == 0
                    && getsockname(listening, pointer, &length) == 0
            }
        }
        guard bound else { throw TestFailure("bind/listen: \(errno)") }
        return (listening, Int(UInt16(bigEndian: address.sin_port)))
    }

    @Test func resetSendsARealResetNotAFin() throws {
        let (listening, port) = try listener()
        defer { close(listening) }
        let client = try LineClient(port: port)
        let peer = accept(listening, nil, nil)
        #expect(peer >= 0)
        defer { close(peer) }
        var limit = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(peer, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        client.reset()
        var byte: UInt8 = 0
        let got = recv(peer, &byte, 1, 0)
        let error = errno
        // A FIN reads as 0 (end of stream); a reset fails with ECONNRESET.
        #expect(got == -1)
        #expect(error == ECONNRESET)
    }
}
