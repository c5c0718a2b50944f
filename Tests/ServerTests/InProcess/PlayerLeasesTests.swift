import Testing
@testable import HotswapEngine

/// World's side of the lease protocol (World+Leases in World.swift,
/// PlayerLeases.swift), in process: what a flush gives back and when a
/// login may use a lease. The SQL side runs against a real PostgreSQL in
/// SharedStorageTests.
@Suite struct PlayerLeasesTests {
    private func world() -> World {
        let world = World(limits: World.Limits(maxRooms: 10, maxRoomMembers: 4))
        world.sharesPlayers = true
        return world
    }

    private func stored(_ key: String) -> StoredRecord { StoredRecord(key: Array(key.utf8), values: []) }

    @Test func aLeaseReadBackWithoutARecordIsGivenBackAndNotTakenForANewPlayer() throws {
        let world = world()
        // An upgraded engine: bob's claim committed as the old engine exec'd.
        world.adoptLeases([Array("bob".utf8): 3])
        // A login of bob must claim (and read his row), not create him.
        #expect(!world.holdsLease(Array("bob".utf8)))
        let released = world.takeReleases()
        #expect(released == [LeaseRelease(key: Array("bob".utf8), epoch: 3)])
        #expect(world.leases.isReleasing(Array("bob".utf8)))
        world.leasesReleased(released)
        #expect(!world.leases.isReleasing(Array("bob".utf8)))
        #expect(world.takeReleases().isEmpty)
    }

    @Test func aLoginKeepsItsLeaseUntilItEndsThenItGoesBack() throws {
        let world = world()
        let key = Array("alice".utf8)
        world.loginStarted(key)
        world.loadClaimed(key, epoch: 4, record: stored("alice"))
        #expect(world.holdsLease(key))
        // Queued meanwhile (a previous session's end): not while a login uses it.
        world.leases.queueRelease(key)
        #expect(world.takeReleases().isEmpty)
        // The login was refused (a wrong secret): the lease goes back.
        world.loginEnded(key)
        let released = world.takeReleases()
        #expect(released == [LeaseRelease(key: key, epoch: 4)])
        // While it is in the flush, a login must wait: not served under it.
        #expect(!world.holdsLease(key))
        world.leasesReleased(released)
        #expect(world.player(withKey: key) == nil)
    }

    @Test func aFailedFlushKeepsAPendingLeasesEpochForTheNextOne() throws {
        let world = world()
        let key = Array("newcomer".utf8)
        world.loginStarted(key)
        world.loadClaimed(key, epoch: 1, record: nil)
        world.loginEnded(key)
        let released = world.takeReleases()
        #expect(released == [LeaseRelease(key: key, epoch: 1)])
        // The flush failed: the release is queued again, with its epoch.
        world.unrelease(released)
        #expect(!world.leases.isReleasing(key))
        #expect(world.takeReleases() == [LeaseRelease(key: key, epoch: 1)])
    }
}
