import CLibUV
import Foundation
import Testing
@testable import HotswapEngine
import Logging

/// LogicHost in process, with the real default game dylib built by the
/// package: requests in, replies and events out, no sockets.
@Suite struct LogicHostTests {
    /// A host serving libGameLogic.so on a loop that is never run.
    final class Harness: LogicHostDelegate {
        let loop = UnsafeMutablePointer<uv_loop_t>.allocate(capacity: 1)
        let world = World(limits: World.Limits(maxRooms: 10, maxRoomMembers: 10))
        let loader: ModuleLoader
        let host: LogicHost
        private(set) var closeRequests: [GameID] = []

        init(module: String = "GameLogic") throws {
            uv_loop_init(loop)
            loader = try ModuleLoader(limits: ModuleLoadLimits(probeExecutable: Products.server.path))
            let module = try loader.load(path: Products.library(module).path)
            host = try LogicHost(world: world, loader: loader, module: module, loop: loop,
                                 logger: Logger(label: "test"))
            host.delegate = self
            auth = AuthDesk(limits: Limits.defaults, verifier: nil, loop: loop, world: world, logger: Logger(label: "test"))
            auth.answer = { [unowned self] ask, verdict in
                if let peer = world.livePeer(of: ask.session) { host.call.answerAuth(ask, verdict, peer: peer) }
            }
        }

        /// Logins as the engine checks them: a guest's answer comes at
        /// once (the loop is never run, so no check goes to a worker).
        var auth: AuthDesk!

        deinit {
            loader.removePrivateCopies()
            uv_loop_close(loop)
            loop.deallocate()
        }

        private(set) var faults: [FaultRecord] = []
        func logicFaulted(_ fault: FaultRecord, rolledBack: SwapReport?, refused: SwapError?) { faults.append(fault) }
        func logicMigrating(_ candidate: LoadedModule, done: Int, of total: Int) {}

        func logicRequestedClose(_ session: GameID) {
            closeRequests.append(session)
            guard world.beginClosing(session) else { return }
            host.sessionClosed(session)
            world.closeSession(session)?.sessionEnded()
        }

        /// Sends one request as `session` and returns the reply.
        @discardableResult
        func call(_ line: String, as session: GameID, _ peer: RecordingPeer) -> String {
            line.withBytes { host.handle($0, from: session, peer: peer) }
            if let ask = host.call.takeAuthAsk() { auth.submit(ask, address: nil) }
            let lines = peer.take()
            let replies = lines.filter { $0.hasPrefix("+") || $0.hasPrefix("-") }
            #expect(replies.count == 1, "exactly one reply to \(line): \(lines)")
            return replies.first ?? ""
        }
    }

    @Test func requestsGetExactlyOneReplyAndEventsReachTheRoom() throws {
        let harness = try Harness()
        let (alice, bob) = (RecordingPeer(), RecordingPeer())
        let a = harness.world.openSession(peer: alice)
        let b = harness.world.openSession(peer: bob)
        #expect(harness.call("PING", as: a, alice) == "+PONG")
        #expect(harness.call("LOGIN alice", as: a, alice) == "+WELCOME alice login 1 score 0")
        #expect(alice.identified)
        #expect(harness.call("LOGIN alice", as: b, bob).hasPrefix("-ERR NAME_TAKEN"))
        #expect(harness.call("LOGIN bob", as: b, bob) == "+WELCOME bob login 2 score 0")
        #expect(harness.call("JOIN lobby", as: a, alice).hasPrefix("+JOINED lobby"))
        #expect(harness.call("JOIN lobby", as: b, bob).hasPrefix("+JOINED lobby"))
        #expect(alice.take().first?.hasPrefix(">JOIN bob") == true)
        #expect(harness.call("SAY hi", as: b, bob) == "+OK")
        #expect(alice.take() == [">SAY bob hi"])
        #expect(harness.world.roomCount == 1)
    }

    @Test func quitAsksForACloseThatRunsAfterTheCallAndOthersHearOfIt() throws {
        let harness = try Harness()
        let (alice, bob) = (RecordingPeer(), RecordingPeer())
        let a = harness.world.openSession(peer: alice)
        let b = harness.world.openSession(peer: bob)
        harness.call("LOGIN alice", as: a, alice)
        harness.call("LOGIN bob", as: b, bob)
        harness.call("JOIN r", as: a, alice)
        harness.call("JOIN r", as: b, bob)
        _ = alice.take()
        #expect(harness.call("QUIT", as: b, bob).hasPrefix("+BYE"))
        #expect(harness.closeRequests == [b])
        #expect(bob.ended)
        #expect(alice.take().contains { $0.hasPrefix(">LEAVE bob") })
        #expect(!harness.world.contains(session: b))
    }

    @Test func rollbackWithNothingBeforeIsRefused() throws {
        let harness = try Harness()
        #expect(throws: SwapError.self) { try harness.host.rollback() }
        #expect(harness.host.history.count == 1)
    }
}
