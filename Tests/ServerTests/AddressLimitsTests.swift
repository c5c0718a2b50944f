import Foundation
import Testing

/// Limits per client address, over real sockets: game connections
/// (`--max-connections-per-ip`) and wrong admin tokens
/// (`--max-failed-auths-per-ip`). The tests connect from loopback, which
/// `--no-exempt-loopback` subjects to the limit like any other address.
@Suite struct AddressLimitsTests {
    @Test func oneAddressGetsAtMostItsShareOfGameConnections() throws {
        let server = try TestServer(arguments: ["--max-connections-per-ip", "3", "--no-exempt-loopback"])
        let kept = try (0..<3).map { _ in try server.connect() }
        for client in kept { #expect(try client.call("PING") == "+PONG") }
        let fourth = try server.connect()
        #expect(try fourth.readLine() == "-ERR TOO_MANY_CONNECTIONS too many connections from your address (--max-connections-per-ip)")
        #expect(try fourth.readLine() == nil, "the refused connection was not closed")
        // One leaves: its place is free again.
        #expect(try kept[0].call("QUIT") == "+BYE")
        let again = try waitUntil(NotAHang.seconds) {
            let next = try server.connect()
            return try next.call("PING") == "+PONG"
        }
        #expect(again)
    }

    /// Loopback is exempt by default (a proxy on this machine, load tests).
    @Test func loopbackIsExemptByDefault() throws {
        let server = try TestServer(arguments: ["--max-connections-per-ip", "2"])
        let clients = try (0..<5).map { _ in try server.connect() }
        for client in clients { #expect(try client.call("PING") == "+PONG") }
    }

    /// A guesser opening connection after connection gets a few wrong
    /// tokens per minute from its address, then no token is compared at
    /// all, not even the right one, until the minute is over.
    @Test func wrongAdminTokensAreThrottledPerAddress() throws {
        let token = "correct-horse-battery-staple"
        let server = try TestServer(arguments: ["--admin-token", token, "--max-failed-auths-per-ip", "4"])
        for _ in 0..<2 {
            let guesser = try server.connectAdmin()
            #expect(try guesser.call("AUTH wrong-wrong-wrong-wrong").hasPrefix("-ERR AUTH_FAILED"))
            #expect(try guesser.call("AUTH wrong-wrong-wrong-wrong").hasPrefix("-ERR AUTH_FAILED"))
        }
        let next = try server.connectAdmin()
        #expect(try next.call("AUTH \(token)").hasPrefix("-ERR AUTH_THROTTLED"))
        #expect(try next.readLine() == nil, "a throttled connection was not closed")
    }
}
