/// Shared storage: sessions whose player another server took.
extension Engine {
    /// Wires the shared storage in (Engine.init): logins read players
    /// under a lease, flushes fence and give them back.
    func shareStorage(_ storage: any SharedPlayerStorage, adoptingLeases: Bool) {
        world.sharesPlayers = true
        writeBehind?.adoptingLeases = adoptingLeases
        world.leases.adopting = adoptingLeases
        writeBehind?.onLeasesSettled = { [unowned self] in auth.leasesSettled() }
        auth.shared = storage
        writeBehind?.onLeasesLost = { [unowned self] sessions in leasesLost(sessions) }
        writeBehind?.leaseCheckIntervalMilliseconds = UInt64(max(storage.leaseSeconds * 1000 / 3, 500))
    }

    /// A fenced write said another server took these sessions' players
    /// (this one was cut off past its lease, or its clock stalled): they
    /// are told, then closed. Nothing of theirs since the last flush is
    /// written: the other server's copy is the player now.
    func leasesLost(_ sessions: [GameID]) {
        for id in sessions {
            world.peer(of: id)?.deliver(Replies.leaseLost)
            tearDown(id)
        }
    }
}
