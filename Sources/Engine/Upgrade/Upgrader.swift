import CLibUV
import Glibc
import UpgradeSupport
import UVKit

/// Where engine upgrades may come from, and what the next engine is
/// started with. Part of `AdminSettings`.
struct UpgradeSettings: Sendable {
    /// The executable this engine runs as (its path at start, or the path
    /// it was upgraded to): a bare `UPGRADE` runs the build installed there.
    var enginePath = ""
    /// Real path of the directory other engine builds may be run from.
    var enginesDirectory = ""
    /// The arguments the process was started with (no program name, no
    /// `--resume`): every engine after it gets the same.
    var arguments: [String] = []
    /// Descriptors the process was started with, open and not
    /// close-on-exec: every engine passes them on as they are.
    var inheritedDescriptors: [Int32] = []
}

/// Paths the first engine resolved at start, carried to every later one.
struct UpgradePaths: Sendable, Equatable {
    var modulePath: String
    var modulesDirectory: String
    var enginesDirectory: String
}

/// `UPGRADE [path]` (and SIGUSR2): replaces the running engine with another
/// build in the same process, players' connections and all state included.
///
///     resolve and confine the path       ── refuse: not found, outside --engines-dir
///     candidate --check-upgrade ARGS     ── off the loop (UpgradeCheck); refuse on anything
///                                           odd, or formats A-B that do not hold ours
///     the final flush                    ── on the database worker, the game served
///                                           (WriteBehind.finalFlush)
///     ─── hold: no byte served from here ───────────────────────────────────
///     flush what the sockets take now; block SIGTERM/INT/USR2 on the loop thread
///     every part writes its section      ── Engine+Handoff: listeners, connections,
///                                           sessions, World, modules, counters
///     over HandoffFormat.maxBytes, or a stop signal caught ── refuse, nothing changed
///     memfd; close-on-exec off on exactly the descriptors handed over
///     remove this program's module directory
///     execve(candidate, ARGS --resume MEMFD)
///     ─── the next engine (Resume) restores, answers, serves ────────────────
///
/// If the exec itself fails, nothing was stopped: this engine answers the
/// refusal and goes on. If the next engine cannot restore, crashes or hangs
/// before it serves (RestoreGuard), it execs this build again with the
/// same memfd (FallbackPlan), which answers.
final class Upgrader {
    unowned(unsafe) let engine: Engine
    /// Where the upgrade is (UpgradeState.swift): changed only by
    /// `moveUpgrade`.
    private(set) var lifecycle = Lifecycle(UpgradeState.idle)

    /// Bounds the final flush (`--upgrade-check-timeout`): a database
    /// worker that stalls (a disk that stopped answering) refuses the
    /// upgrade, and flushes go on, instead of leaving the operator without
    /// an answer and every later upgrade refused as "in progress". Made at
    /// the first upgrade, closed at shutdown (`cancel`).
    private var flushDeadline: UnsafeMutablePointer<uv_timer_t>?

    init(engine: Engine) { self.engine = engine }

    /// O_PATH (Linux), which Glibc declares only under _GNU_SOURCE.
    static let openPathOnly: Int32 = 0o10000000

    var settings: UpgradeSettings { engine.admin.settings.upgrade }
    /// An upgrade was asked for and has not ended.
    var inProgress: Bool { lifecycle.state.request != nil }

    /// What STATUS shows as `upgrade=`.
    var stateName: String { lifecycle.state.name }

    private func moveUpgrade(to next: UpgradeState) { lifecycle.move(to: next, logger: engine.logger) }

    /// Checks the engine at `path` (nil: this engine's own path) and, if it
    /// passes, becomes it. `refused` is called on the loop with the reason
    /// when it does not happen; when it does, this process is the next
    /// engine, which answers whoever asked.
    func upgrade(path: String?, refused: @escaping (UpgradeRefusal) -> Void) {
        guard !engine.shuttingDown else { return refused(UpgradeRefusal("the server is shutting down")) }
        guard !inProgress else { return refused(UpgradeRefusal("another upgrade is in progress")) }
        let candidate: String
        let identity: FileIdentity
        let fd: Int32
        do throws(UpgradeRefusal) {
            candidate = try resolve(path)
            identity = try FileIdentity(path: candidate)
            // O_PATH when only execution is allowed (a build installed 0711
            // by another user): enough to fstat it and exec it by descriptor.
            var opened = open(candidate, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
            if opened < 0 && errno == EACCES { opened = open(candidate, Upgrader.openPathOnly | O_CLOEXEC) }
            fd = opened
            guard fd >= 0 else { throw UpgradeRefusal("cannot open \(candidate): \(String(cString: strerror(errno)))") }
            guard (try? FileIdentity(descriptor: fd)) == identity else {
                close(fd)
                throw UpgradeRefusal("\(candidate) changed while it was being opened; run the upgrade again")
            }
        } catch {
            return refused(error)
        }
        engine.logger.notice("upgrade: checking \(candidate)")
        let request = UpgradeRequest(candidate: candidate, identity: identity, fd: fd, refused: refused)
        if case .settling = lifecycle.state { moveUpgrade(to: .waiting(request)) } else { startCheck(request) }
    }

    /// A resumed engine's worker marks the descriptors its upgrade handed
    /// over (`Engine.settleOffTheLoop`): no check starts until `settled`.
    func beginSettling() { moveUpgrade(to: .settling) }

    /// The worker marked the last upgrade's descriptors: a check may start.
    func settled() {
        switch lifecycle.state {
        case .settling: moveUpgrade(to: .idle)
        case .waiting(let request): startCheck(request)
        default: lifecycle.bug("settled, but no worker was settling", logger: engine.logger)
        }
    }

    /// The request of the upgrade in progress, if it is still `request`
    /// (not refused or cancelled since).
    private func stillAsked(_ request: UpgradeRequest) -> Bool { lifecycle.state.request === request }

    /// Runs the candidate's `--check-upgrade`; hands over if it passes.
    private func startCheck(_ request: UpgradeRequest) {
        let candidate = request.candidate
        let check = UpgradeCheck(loop: engine.loop, path: candidate, arguments: settings.arguments,
                                 timeoutMilliseconds: engine.limits.upgradeCheckTimeout) { [unowned(unsafe) self] result in
            guard stillAsked(request) else { return }
            switch result {
            case .failure(let reason):
                finish(reason)
            case .success(let answer):
                if let refusal = refusal(answer, candidate: candidate, identity: request.identity) { return finish(refusal) }
                engine.logger.notice("upgrade: \(candidate) is engine \(answer.version), reads handoff formats \(HandoffFormat.describe(answer.formats))")
                guard let writeBehind = engine.writeBehind else { return handOverOrFinish(request, version: answer.version) }
                finalFlush(request, version: answer.version, writeBehind)
            }
        }
        moveUpgrade(to: .checking(request, check))
        check.start()
    }

    /// The final flush, on the database worker, while the loop serves: a
    /// flush already there finishes (the exec must not cut a write short),
    /// then one more writes what is dirty now, and none starts after it:
    /// only what is dirtied during that one goes to the next engine in
    /// memory (as does all of it if the flush fails: its rows are dirty
    /// again). Then the hand-over.
    private func finalFlush(_ request: UpgradeRequest, version: String, _ writeBehind: WriteBehind) {
        moveUpgrade(to: .flushing(request, version: version))
        armFlushDeadline { [unowned(unsafe) self] in
            guard stillAsked(request) else { return }
            writeBehind.paused = false
            finish(UpgradeRefusal("the final database flush did not finish within "
                                  + "\(engine.limits.upgradeCheckTimeout) ms (--upgrade-check-timeout); nothing was changed"))
        }
        writeBehind.finalFlush { [unowned(unsafe) self] outcome in
            // Refused meanwhile (the deadline, a shutdown): this flush was an
            // ordinary one, and flushes go on. (Checked before the deadline
            // is stopped: it may be a later upgrade's by now.)
            guard stillAsked(request) else {
                if !inProgress { writeBehind.paused = false }
                return
            }
            if let flushDeadline { uv_timer_stop(flushDeadline) }
            switch outcome {
            case .nothingDirty:
                break
            case .wrote(let records, let milliseconds):
                engine.logger.notice("upgrade: the final flush wrote \(records) records in \(milliseconds) ms; \(engine.world.dirtyCount) changed since go over in memory")
            case .failed(let error) where error.lostFile:
                // The next engine opens the path again: it would create a
                // new file there (or take another's) and write only what
                // is dirty into it, every other player missing.
                writeBehind.paused = false
                return finish(UpgradeRefusal("the database file is gone (\(error.description)); nothing was changed"))
            case .failed(let error):
                engine.logger.error("upgrade: the final flush failed (\(error.description)); \(engine.world.dirtyCount) dirty records go over in memory")
            }
            // Deletions (FORGET) do not go over in memory: a player
            // forgotten here but still in the file would come back.
            if !engine.world.deletedKeys.isEmpty {
                writeBehind.paused = false
                return finish(UpgradeRefusal("\(engine.world.deletedKeys.count) forgotten players are not deleted from the database yet (the final flush did not write them); nothing was changed"))
            }
            handOverOrFinish(request, version: version)
        }
    }

    /// Hands over (this process becomes the next engine) or, when that
    /// cannot be done, serves on: flushes again and tells whoever asked.
    private func handOverOrFinish(_ request: UpgradeRequest, version: String) {
        let refusal = handOver(to: request.candidate, version: version)
        // Still here: this engine serves on, and flushes again.
        engine.writeBehind?.paused = false
        finish(refusal)
    }

    /// The server is stopping: a check in flight is abandoned (killed) and
    /// whoever asked is told, before the admin connections close.
    func cancel() {
        if case .checking(_, let check) = lifecycle.state { check.cancel() }
        finish(UpgradeRefusal("the server is shutting down"))
        flushDeadline?.closeAndFree()
        flushDeadline = nil
        flushDeadlineExpired = nil
    }

    /// Starts the final flush's deadline; `expired` runs on the loop if it
    /// passes before the flush is done.
    private func armFlushDeadline(_ expired: @escaping () -> Void) {
        let timer: UnsafeMutablePointer<uv_timer_t>
        if let existing = flushDeadline {
            timer = existing
        } else {
            timer = .allocateHandle()
            uvMust(uv_timer_init(engine.loop, timer), "uv_timer_init")
            uv_unref(timer.handle)
            flushDeadline = timer
        }
        flushDeadlineExpired = expired
        timer.context = UVContext.pointer(to: self)
        uvMust(uv_timer_start(timer, { timer in
            let upgrader = UVContext.object(timer!.pointee.data, as: Upgrader.self)
            let expired = upgrader.flushDeadlineExpired
            upgrader.flushDeadlineExpired = nil
            expired?()
        }, UInt64(engine.limits.upgradeCheckTimeout), 0), "uv_timer_start")
    }
    private var flushDeadlineExpired: (() -> Void)?

    /// The upgrade is over without an exec: tell whoever asked, once.
    private func finish(_ refusal: UpgradeRefusal) {
        guard let request = lifecycle.state.request else { return }
        if case .waiting = lifecycle.state { moveUpgrade(to: .settling) } else { moveUpgrade(to: .idle) }
        close(request.fd)
        request.refused(refusal)
    }

    /// Why what the check says is not a compatible engine, or nil.
    private func refusal(_ answer: UpgradeCheck.Answer, candidate: String, identity: FileIdentity) -> UpgradeRefusal? {
        guard answer.formats.contains(EngineIdentity.handoffFormat) else {
            return UpgradeRefusal("the new engine \(candidate) (engine \(answer.version)) reads handoff formats "
                                  + "\(HandoffFormat.describe(answer.formats)), this one writes \(EngineIdentity.handoffFormat)")
        }
        guard (try? FileIdentity(path: candidate)) == identity else {
            return UpgradeRefusal("\(candidate) changed while it was being checked; run the upgrade again")
        }
        return nil
    }

    /// The path named (relative: in the engines directory), resolved, and
    /// either this engine's own path or inside the engines directory.
    private func resolve(_ path: String?) throws(UpgradeRefusal) -> String {
        let named = path ?? settings.enginePath
        guard !named.isEmpty else { throw UpgradeRefusal("this engine does not know its own path; name one") }
        switch PathConfinement.resolve(named, in: settings.enginesDirectory) {
        case .inside(let real):
            return real
        case .notFound(let full):
            throw UpgradeRefusal("engine not found: \(full)")
        case .outside(let full, let real):
            // This engine's own path is allowed wherever it is.
            if PathConfinement.realPath(settings.enginePath) == real { return real }
            throw UpgradeRefusal("engine path \(full) resolves to \(real), outside the engines directory "
                                 + "\(settings.enginesDirectory.isEmpty ? "(none)" : settings.enginesDirectory)")
        }
    }

    // MARK: - Handing over

    /// Serializes the engine into a memfd and execs `path` with it. Returns
    /// only when that could not be done; the engine then serves on, as it
    /// was (nothing was stopped: everything here runs in one loop callback).
    private func handOver(to path: String, version: String) -> UpgradeRefusal {
        guard !engine.shuttingDown else { return UpgradeRefusal("the server is shutting down") }
        if let problem = engine.host.handoffProblem { return UpgradeRefusal(problem) }
        // The last bytes this engine serves: whatever the kernel takes now.
        // What it does not take goes over as each connection's unsent output.
        engine.transport.flushAll()
        let holdStarted = monotonicNanoseconds()
        // From here a caught signal (SIGTERM, SIGINT, SIGHUP, SIGUSR2, ...) stays pending (every other
        // thread blocks them from start, see engine_signals.h): across the
        // exec, for the next engine's handlers, or back to this engine's if
        // the upgrade is refused below.
        let mask = ProcessImage.blockDeferredSignals()
        defer { ProcessImage.restoreSignalMask(mask) }

        let memfd = hs_memfd_create("hotswap-handoff")
        guard memfd >= 0 else { return UpgradeRefusal("memfd_create: \(String(cString: strerror(-memfd)))") }
        // The running build, kept by descriptor: the install may have
        // replaced its file, and the fallback must run this build.
        let previousEngine = open("/proc/self/exe", O_RDONLY | O_CLOEXEC)
        guard previousEngine >= 0 else {
            close(memfd)
            return UpgradeRefusal("cannot open /proc/self/exe: \(String(cString: strerror(errno)))")
        }
        // The loop's epoll instance watches every socket: closing it takes
        // about 8 ms at 10,000, which the exec would do inside the hold. It
        // goes over instead, and the next engine closes it off its loop.
        let retired = uv_backend_fd(engine.loop)
        let passed = [memfd, previousEngine] + (retired >= 0 ? [retired] : []) + engine.transport.handedOverDescriptors
            + engine.host.handedOverDescriptors + engine.handedOverStorageDescriptors
        var section = engineSection(holdStarted: holdStarted, nextEnginePath: path)
        section.retiredDescriptors = retired >= 0 ? [retired] : []
        // The fallback runs this build again: with the variables that name
        // and shape it, which this process no longer has in its environment
        // (EngineIdentity.detachEnvironment), and systemd's, which it
        // notifies as this same process (SystemdNotifier).
        let fallback = FallbackPlan(previousEngineFD: previousEngine, previousEnginePath: settings.enginePath,
                                    arguments: settings.arguments,
                                    environment: ProcessImage.environment() + EngineIdentity.fallbackEnvironment
                                        + SystemdNotifier.environmentForNextEngine + LeaseOwner.environmentForNextEngine
                                        + (engine.agones?.environmentForNextEngine ?? []),
                                    passedFDs: passed)
        // About 140 bytes per player (connection, session, fields), plus
        // what is unsent.
        let estimate = (1 << 16) + passed.count * 192 + engine.transport.connections.reduce(0) { $0 + $1.bufferedOutput }
        func encode() -> [UInt8] {
            HandoffFormat.encode(format: EngineIdentity.handoffFormat, fallback: fallback, capacity: estimate) {
                engine.encodeHandoff(into: &$0, engine: section)
            }
        }
        let bytes = encode()
        func refuse(_ problem: String) -> UpgradeRefusal {
            ProcessImage.closeOnExec(passed)
            close(memfd)
            close(previousEngine)
            return UpgradeRefusal(problem)
        }
        // Refused here, not by the next engine: one it cannot read would
        // have to hand everything back (HandoffFormat.maxBytes).
        let limit = EngineIdentity.handoffLimit
        guard bytes.count <= limit else {
            return refuse("handoff is \(bytes.count) bytes, over the limit of \(limit) bytes an engine reads; nothing was changed")
        }
        // A SIGTERM or SIGINT that came in during this callback was caught,
        // not yet acted on: the loop shuts down on its next turn instead.
        if let signal = ProcessImage.stopSignals.first(where: { hs_signal_seen($0) != 0 }) {
            return refuse("the server is shutting down (\(FaultRecord.signalName(signal)) arrived)")
        }
        if let problem = Upgrader.write(bytes, to: memfd)
            ?? ProcessImage.keepAcrossExec(passed, inherited: settings.inheritedDescriptors)
        {
            return refuse(problem)
        }
        let connections = engine.transport.connections.filter { $0.state != .closed }
        let written = (monotonicNanoseconds() - holdStarted) / 1000
        let passing = "\(engine.transport.listeners.count) listeners, \(connections.count) connections "
            + "(\(engine.world.sessionCount) players, \(engine.admin.connectionCount) admin), "
            + "\(engine.host.handedOverDescriptors.count) module images, handoff \(bytes.count) bytes in fd \(memfd) "
            + "written in \(written) us"
        engine.logger.notice("upgrade: exec \(path) (engine \(EngineIdentity.version) -> \(version)): passing \(passing)")
        // A SIGUSR2 caught during this callback (before the mask) asked for
        // what is happening now; its flag dies with this program. One that
        // arrives after the mask stays pending and upgrades again in the
        // next engine; if the exec fails, this one's flag is still set and
        // the loop acts on it.
        if hs_signal_seen(SIGUSR2) != 0 {
            engine.logger.notice("upgrade: a SIGUSR2 during an upgrade is ignored: this upgrade is the one it asked for")
        }
        // A log reader that keeps up gets every line; a stalled one (a slow
        // disk under the audit log) costs the lines still queued, never more
        // than these waits (up to 2 x 100 ms of the hold).
        let logSink = engine.admin.settings.logSink
        let auditLog = engine.admin.settings.auditLog
        // (The handoff counted the drops up to here; the writers may drop
        // more during these waits: a reader that closed its end.)
        let droppedBefore = (log: logSink?.droppedLines ?? 0, audit: auditLog?.droppedLines ?? 0)
        logSink?.flush(timeout: .milliseconds(100))
        auditLog?.flush(timeout: .milliseconds(100))
        // Those die with the exec: counted as dropped (`log_dropped`,
        // `audit_dropped` in the next engine), the handoff written again
        // with the counts (only then: a reader that stalls or went away).
        let lost = (log: (logSink?.queuedLines ?? 0) + (logSink?.droppedLines ?? 0) - droppedBefore.log,
                    audit: (auditLog?.queuedLines ?? 0) + (auditLog?.droppedLines ?? 0) - droppedBefore.audit)
        if lost.log + lost.audit > 0 {
            section.admin.logDroppedBefore += lost.log
            section.admin.auditDroppedBefore += lost.audit
            let counted = encode()
            guard counted.count <= limit else {
                return refuse("handoff is \(counted.count) bytes, over the limit of \(limit) bytes an engine reads; nothing was changed")
            }
            if ftruncate(memfd, 0) != 0 { return refuse("truncating the handoff: \(String(cString: strerror(errno)))") }
            if let problem = Upgrader.write(counted, to: memfd) { return refuse(problem) }
        }
        let target: String
        switch execTarget(path) {
        case .success(let found): target = found
        case .failure(let refusal): return refuse(refusal.description)
        }
        // This program's private directory goes now: the next one makes its
        // own, and nobody would remove this one after the exec.
        let loader = engine.host.loader
        loader.removePrivateCopies()
        // systemd shows the service reloading until the next engine (or
        // the fallback) sends READY=1; the next engine is this process and
        // gets systemd's variables back (SystemdNotifier). Its
        // --check-upgrade child had none.
        engine.systemd?.reloading(status: "upgrading the engine \(EngineIdentity.version) -> \(version), "
                                  + "\(engine.world.sessionCount) players held")
        let reason = ProcessImage.exec(path: target, arguments: [path] + settings.arguments + ["--resume", "\(memfd)"],
                                       environment: ProcessImage.environment() + SystemdNotifier.environmentForNextEngine
                                           + LeaseOwner.environmentForNextEngine
                                           + (engine.agones?.environmentForNextEngine ?? []))
        // Still here: the exec failed, and this engine serves on.
        engine.systemd?.readyAgain()
        do {
            try loader.recreatePrivateDirectory()
        } catch {
            engine.logger.error("upgrade: \(error); reloads will fail until a restart")
        }
        return refuse(reason)
    }

    /// What to exec: the checked file by its descriptor, if it is still
    /// what was checked (not written to since). A `#!` script is exec'd by
    /// its path instead, compared once more first: its interpreter opens
    /// the script by the name it is given after the exec, when a
    /// close-on-exec descriptor is gone (and an inheritable one would stay
    /// open in the next engine for good).
    private func execTarget(_ path: String) -> Result<String, UpgradeRefusal> {
        guard let file = lifecycle.state.request, (try? FileIdentity(descriptor: file.fd)) == file.identity else {
            return .failure(UpgradeRefusal("\(path) changed after it was checked; run the upgrade again"))
        }
        var magic: (UInt8, UInt8) = (0, 0)
        let read = withUnsafeMutableBytes(of: &magic) { pread(file.fd, $0.baseAddress, 2, 0) }
        guard read == 2, magic == (UInt8(ascii: "#"), UInt8(ascii: "!")) else { return .success("/proc/self/fd/\(file.fd)") }
        guard (try? FileIdentity(path: path)) == file.identity else {
            return .failure(UpgradeRefusal("\(path) changed after it was checked; run the upgrade again"))
        }
        return .success(path)
    }

    /// The engine's own section for the next engine.
    private func engineSection(holdStarted: UInt64, nextEnginePath: String) -> EngineHandoff {
        let adminSettings = engine.admin.settings
        var counters = engine.admin.counters
        counters.logDroppedBefore += adminSettings.logSink?.droppedLines ?? 0
        counters.auditDroppedBefore += adminSettings.auditLog?.droppedLines ?? 0
        return EngineHandoff(
            fromVersion: EngineIdentity.version, holdStartedNanoseconds: holdStarted,
            startedNanoseconds: engine.startedNanoseconds, enginePath: nextEnginePath,
            paths: UpgradePaths(modulePath: adminSettings.defaultModulePath,
                                modulesDirectory: adminSettings.modulesDirectory,
                                enginesDirectory: settings.enginesDirectory),
            arguments: settings.arguments, inheritedDescriptors: settings.inheritedDescriptors,
            counters: engine.counters, admin: counters,
            outputOverflows: engine.transport.outputOverflows)
    }

    /// Writes the handoff and rewinds; the reason on failure. A memfd is
    /// memory: this never waits on a device.
    private static func write(_ bytes: [UInt8], to fd: Int32) -> String? {
        var done = 0
        while done < bytes.count {
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return "writing the handoff: \(String(cString: strerror(errno)))" }
            done += written
        }
        return lseek(fd, 0, SEEK_SET) == 0 ? nil : "rewinding the handoff: \(String(cString: strerror(errno)))"
    }
}

/// Which file a path names, and its size and time: if any of these changes
/// between the check and the exec, the file that would run is not the one
/// that was checked.
struct FileIdentity: Equatable {
    let device: UInt64
    let inode: UInt64
    let size: Int64
    let modified: Int64
    let modifiedNanoseconds: Int

    init(path: String) throws(UpgradeRefusal) {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw UpgradeRefusal("engine not found: \(path): \(String(cString: strerror(errno)))")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw UpgradeRefusal("\(path) is not a regular file") }
        self.init(info)
    }

    /// The file open as `fd`.
    init(descriptor fd: Int32) throws(UpgradeRefusal) {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw UpgradeRefusal("descriptor \(fd): \(String(cString: strerror(errno)))") }
        self.init(info)
    }

    private init(_ info: stat) {
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        modified = Int64(info.st_mtim.tv_sec)
        modifiedNanoseconds = Int(info.st_mtim.tv_nsec)
    }
}
