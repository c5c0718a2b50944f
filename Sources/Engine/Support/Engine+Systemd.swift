import Glibc

/// What the engine tells systemd (`SystemdNotifier`), worded from its
/// parts. The status lines are built only when sent: at READY=1, after a
/// swap, every few seconds on the notifier's timer, at the shutdown, never
/// per request.
extension Engine {
    /// Once every port listens (the start-up's step 8, for a first engine
    /// and a resumed one alike): READY=1, and the watchdog's timer. Nothing
    /// when the process was not started by systemd.
    func notifySystemdReady(gamePort: Int) {
        guard let notifier = SystemdNotifier(logger: logger) else { return }
        systemd = notifier
        notifier.start(on: loop) { [unowned(unsafe) self] in systemdStatus(gamePort: gamePort) }
        notifier.ready(status: systemdStatus(gamePort: gamePort))
        let watchdog = notifier.pingInterval.map { "WATCHDOG=1 every \($0) ms" } ?? "no watchdog"
        logger.info("systemd: READY=1 sent to \(notifier.socketName), \(watchdog)")
    }

    /// `serving on port 7777, engine 1.1.0+…, module gems 1.0.1, 12 players`
    func systemdStatus(gamePort: Int) -> String {
        "serving on port \(gamePort), engine \(EngineIdentity.version), module \(host.module.name) "
            + "\(host.module.version), \(world.sessionCount) players"
    }

    /// STOPPING=1 as the shutdown begins, with what it has left to do.
    func notifySystemdStopping() {
        guard let systemd else { return }
        let flush = writeBehind == nil ? "no database" : "then a final flush of \(dirtyPlayers) changed players"
        systemd.stopping(status: "stopping: telling \(world.sessionCount) players, \(flush)")
    }
}
