import Glibc
import Testing
@testable import HotswapEngine

/// The descriptor rules of an upgrade, in process: what the new engine
/// takes must have been passed, and be taken once; the passed ones left
/// once the engine took its own must all be stream sockets; what the old
/// engine keeps from the next program is marked close-on-exec even where
/// close_range is missing.
@Suite struct HandedOverDescriptorTests {
    @Test func onlyPassedDescriptorsAreTakenOnce() throws {
        var descriptors = HandedOverDescriptors(passed: [7, 3, 12])
        try descriptors.take(12, "the database lock")
        #expect(throws: HandoffError.invalid("a connection names descriptor 12 a second time")) {
            try descriptors.take(12, "a connection")
        }
        for fd: Int32 in [4, 13, -1] {
            #expect(throws: HandoffError.invalid("a listener names descriptor \(fd), which was not passed")) {
                try descriptors.take(fd, "a listener")
            }
        }
        #expect(descriptors.untaken == [3, 7])
    }

    @Test func theSocketsLeftMustAllBeStreamSockets() throws {
        var stream: [Int32] = [0, 0]
        var datagram: [Int32] = [0, 0]
        var pipeEnds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, streamSocketType, 0, &stream) == 0)
        #expect(socketpair(AF_UNIX, datagramSocketType, 0, &datagram) == 0)
        #expect(pipe(&pipeEnds) == 0)
        defer { for fd in stream + datagram + pipeEnds { close(fd) } }
        #expect(SocketCheck(fds: stream).wait() == nil)
        #expect(SocketCheck(fds: []).wait() == nil)
        #expect(SocketCheck(fds: stream + [pipeEnds[0]]).wait() == "descriptor \(pipeEnds[0]) is not a socket")
        #expect(SocketCheck(fds: [datagram[0]] + stream).wait() == "descriptor \(datagram[0]) is not a stream socket")
        #expect(SocketCheck(fds: [9999]).wait() == "descriptor 9999: Bad file descriptor")
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
