import Glibc
import Testing
@testable import HotswapEngine

/// The descriptor rules of an upgrade, in process: what the new engine
/// takes must have been passed, once, and be a socket where one is meant;
/// what the old engine keeps from the next program is marked close-on-exec
/// even where close_range is missing.
@Suite struct HandedOverDescriptorTests {
    @Test func onlyPassedDescriptorsAreTakenOnceAndSocketsMustBeSockets() throws {
        var pair: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
        var pipeEnds: [Int32] = [0, 0]
        #expect(pipe(&pipeEnds) == 0)
        defer { for fd in pair + pipeEnds { close(fd) } }

        var descriptors = HandedOverDescriptors(passed: [pair[0], pipeEnds[0]])
        try descriptors.takeSocket(pair[0], "a connection")
        #expect(throws: HandoffError.invalid("a connection names descriptor \(pair[0]) a second time")) {
            try descriptors.takeSocket(pair[0], "a connection")
        }
        #expect(throws: HandoffError.invalid("a listener names descriptor \(pair[1]), which was not passed")) {
            try descriptors.takeSocket(pair[1], "a listener")
        }
        #expect(throws: HandoffError.invalid("a connection descriptor \(pipeEnds[0]) is not a socket")) {
            try descriptors.takeSocket(pipeEnds[0], "a connection")
        }
        var others = HandedOverDescriptors(passed: [pipeEnds[0]])
        try others.take(pipeEnds[0], "the database lock")
    }

    /// Where close_range(CLOSE_RANGE_CLOEXEC) fails (Linux before 5.11),
    /// every open descriptor is marked one by one from /proc/self/fd.
    @Test func everyDescriptorFromANumberUpIsMarkedCloseOnExecWithoutCloseRange() throws {
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)  // no O_CLOEXEC
        defer { for fd in ends { close(fd) } }
        for fd in ends { #expect(fcntl(fd, F_GETFD) & FD_CLOEXEC == 0) }
        #expect(ProcessImage.markCloseOnExec(from: ends.min()!) == nil)
        for fd in ends { #expect(fcntl(fd, F_GETFD) & FD_CLOEXEC != 0) }
    }
}
