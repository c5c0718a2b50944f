import CLibUV
import Glibc
import UVKit

/// A handoff this engine was started to resume (`--resume FD`), decoded and
/// not yet taken: nothing is restored until the modules are mapped again.
///
/// A class: the start-up configuration keeps it for the whole run, and
/// once the engine has restored the sections (`Engine.resume`) it lets go
/// of them (`releaseSections`). World adopts the decoded arrays without
/// copying them; were the decoded values kept too, the first write to each
/// column after an upgrade would copy the whole column on the loop.
final class ResumedState {
    let memfd: Int32
    /// The fallback block (the way back, until the commit).
    let fallback: FallbackPlan
    /// Every section, read and checked; nil once restored.
    private(set) var sections: HandoffSections?
    /// Set when this engine is the previous build run again because the new
    /// one could not restore (`--resume-failed REASON`): the reason.
    let failedUpgrade: String?
    /// The descriptors that must be sockets (every passed one that is not
    /// the engine's own), being checked meanwhile.
    let sockets: SocketCheck
    /// The small sections, kept after the big ones are let go.
    let engine: EngineHandoff
    let logic: LogicHandoff
    /// The database's write-behind state (nil with `--database :memory:`).
    let database: WriteBehindHandoff?

    init(memfd: Int32, fallback: FallbackPlan, sections: HandoffSections, failedUpgrade: String?, sockets: SocketCheck) {
        self.memfd = memfd
        self.fallback = fallback
        self.sections = sections
        self.failedUpgrade = failedUpgrade
        self.sockets = sockets
        engine = sections.engine
        logic = sections.logic
        database = sections.database.writeBehind
    }

    /// The engine has taken the sections over: the decoded values go.
    func releaseSections() { sections = nil }

    /// This engine's own path from now on: the build it was exec'd from.
    var enginePath: String { failedUpgrade == nil ? engine.enginePath : fallback.previousEnginePath }
}

/// The resumed engine's side of an upgrade: read the memfd, map the
/// modules again from their private copies, and, when anything fails
/// before the engine serves, give everything back to the previous engine.
enum Resume {
    /// Reads and decodes the handoff in `memfd`.
    static func open(memfd: Int32, failedUpgrade: String?) throws(StartRefused) -> ResumedState {
        let bytes = try read(memfd)
        #if HOTSWAP_TEST_KNOBS
        if failedUpgrade == nil && EngineIdentity.restoreFault == .segv {
            // The fault-injection knob (TestKnobs): a real SIGSEGV before
            // the fault guard is armed, caught by the restore guard.
            UnsafeMutablePointer<Int>(bitPattern: 16)!.pointee = 1
        }
        let socketCheckFault = failedUpgrade == nil && EngineIdentity.restoreFault == .socketCheckSegv
        #else
        let socketCheckFault = false
        #endif
        do throws(HandoffError) {
            let handoff = try HandoffFormat.decode(bytes, readable: EngineIdentity.readableFormats)
            let sections = try HandoffSections(decoding: handoff)
            let (engine, logic, database) = (sections.engine, sections.logic, sections.database.writeBehind)
            // Every descriptor that is not a socket; what is left are the
            // sockets, checked on a thread while the restore goes on, and
            // taken by the transport (Engine.restoreHandoff).
            var descriptors = HandedOverDescriptors(passed: handoff.fallback.passedFDs)
            try descriptors.take(memfd, "--resume")
            try descriptors.take(handoff.fallback.previousEngineFD, "the previous engine")
            try descriptors.take(logic.current.descriptor, "the current module")
            if let previous = logic.previous { try descriptors.take(previous.descriptor, "the previous module") }
            for fd in database?.lockDescriptors ?? [] { try descriptors.take(fd, "the database lock") }
            for fd in engine.retiredDescriptors { try descriptors.take(fd, "the old loop") }
            return ResumedState(memfd: memfd, fallback: handoff.fallback, sections: sections,
                                failedUpgrade: failedUpgrade,
                                sockets: SocketCheck(fds: descriptors.untaken,
                                                     fault: socketCheckFault))
        } catch {
            throw StartRefused("\(error)")
        }
    }

    /// The whole memfd (it is memory: no device to wait on), up to the
    /// handoff size limit the writer kept to.
    static func read(_ fd: Int32) throws(StartRefused) -> [UInt8] {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw StartRefused("--resume \(fd): \(String(cString: strerror(errno)))") }
        let size = Int(info.st_size)
        let limit = EngineIdentity.handoffLimit
        guard size >= 0, size <= limit else {
            throw StartRefused("the handoff is \(size) bytes, over the limit of \(limit) bytes this engine reads")
        }
        return try read(fd, count: size)
    }

    /// The first `count` bytes of `fd` (fewer only if it is shorter).
    private static func read(_ fd: Int32, count: Int) throws(StartRefused) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let got = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(done)) }
            if got < 0 && errno == EINTR { continue }
            guard got >= 0 else { throw StartRefused("--resume \(fd): cannot read the handoff: \(String(cString: strerror(errno)))") }
            if got == 0 { return Array(bytes[..<done]) }
            done += got
        }
        return bytes
    }

    /// Only the handoff's fallback block: whatever the body's size or
    /// format, the way back can be read (the fallback never fails because
    /// the handoff is large).
    static func readFallbackPlan(_ fd: Int32) throws(StartRefused) -> FallbackPlan {
        let header = try read(fd, count: HandoffFormat.prefixHeaderBytes)
        guard header.count == HandoffFormat.prefixHeaderBytes else { throw StartRefused("--resume \(fd): not a handoff") }
        let blockLength = Int(header[12]) | Int(header[13]) << 8 | Int(header[14]) << 16 | Int(header[15]) << 24
        guard blockLength <= HandoffFormat.maxBytes else { throw StartRefused("--resume \(fd): not a handoff") }
        let prefix = try read(fd, count: HandoffFormat.prefixHeaderBytes + blockLength)
        do throws(HandoffError) {
            return try HandoffFormat.decodePrefix(prefix).fallback
        } catch {
            throw StartRefused("\(error)")
        }
    }

    /// Maps the current and previous modules again from the private copies
    /// the previous engine handed over, and checks they are the same bytes.
    static func loadModules(_ state: ResumedState, loader: ModuleLoader) throws(StartRefused)
        -> (current: LoadedModule, previous: LoadedModule?)
    {
        func load(_ module: LogicHandoff.Module) throws(StartRefused) -> LoadedModule {
            let name = module.sourcePath.split(separator: "/").last.map(String.init) ?? "module.so"
            var loaded: LoadedModule
            do throws(ModuleLoadError) {
                loaded = try loader.load(path: "/proc/self/fd/\(module.descriptor)", named: name)
            } catch {
                throw StartRefused("module \(module.name) \(module.version) no longer loads: \(error)")
            }
            guard loaded.sha256 == module.sha256 else {
                throw StartRefused("the private copy of \(module.sourcePath) is not the module that served")
            }
            loaded.sourcePath = module.sourcePath
            return loaded
        }
        let current = try load(state.logic.current)
        return (current, try state.logic.previous.map(load))
    }

    /// Everything is restored: the previous engine's executable, the memfd
    /// and the module copies' handed-over descriptors are no longer needed
    /// (no fallback from here on; the modules were copied again).
    static func commit(_ state: ResumedState) {
        // First: a crash or hang from here is the new engine's own.
        RestoreGuard.disarm()
        close(state.fallback.previousEngineFD)
        close(state.logic.current.descriptor)
        if let previous = state.logic.previous { close(previous.descriptor) }
        close(state.memfd)
    }

    /// Gives the handoff back to the previous engine: execs its build (kept
    /// open by descriptor) with its own arguments and environment, the same
    /// memfd, and the reason (a whole sentence: "the new engine could not
    /// restore (...)"), which it answers the operator with. Returns only if
    /// that cannot be done, with why.
    static func fallBack(memfd: Int32, reason: String) -> String {
        // The guard's timer must not fire into this exec (nor survive it).
        RestoreGuard.disarm()
        let plan: FallbackPlan
        do {
            plan = try readFallbackPlan(memfd)
        } catch {
            return "cannot read the handoff's fallback block: \(error)"
        }
        // Restoring marks no descriptor close-on-exec, neither the handed-over
        // ones nor those the process inherited (which therefore pass on as
        // they are); nothing is left to chance for the handed-over ones.
        if let problem = ProcessImage.clearCloseOnExec(plan.passedFDs) { return problem }
        _ = ProcessImage.blockDeferredSignals()
        let line = "hotswap: \(reason); handing everything back to the previous engine \(plan.previousEnginePath)\n"
        _ = line.withCString { Glibc.write(STDERR_FILENO, $0, strlen($0)) }
        return ProcessImage.exec(
            path: "/proc/self/fd/\(plan.previousEngineFD)",
            arguments: [plan.previousEnginePath] + plan.arguments + ["--resume", "\(memfd)", "--resume-failed", reason],
            environment: plan.environment)
    }

    /// Descriptors open without close-on-exec when the process started (set
    /// first thing by `main` in a first engine; a resumed one gets the list
    /// from the handoff, as a scan would see the handed-over sockets too).
    nonisolated(unsafe) static var inheritedAtStart: [Int32] = []
    /// CLOCK_MONOTONIC when this program started (set first thing by
    /// `main`): splits a hold into the exec and start-up, and the restore.
    nonisolated(unsafe) static var programStartedNanoseconds: UInt64 = 0

    /// `--resume N` in raw arguments, before (or without) parsing them: a
    /// resumed engine whose arguments do not parse must still fall back.
    static func descriptor(in arguments: [String]) -> Int32? {
        for (index, argument) in arguments.enumerated() {
            if argument == "--resume", index + 1 < arguments.count { return Int32(arguments[index + 1]) }
            if argument.hasPrefix("--resume=") { return Int32(argument.dropFirst("--resume=".count)) }
        }
        return nil
    }

    /// `--upgrade-restore-timeout` in raw arguments (the restore guard is
    /// armed before they are parsed); its default when absent or out of
    /// bounds (parsing then refuses them, and the engine falls back).
    static func restoreTimeout(in arguments: [String]) -> Int {
        var named: String?
        for (index, argument) in arguments.enumerated() {
            if argument == "--upgrade-restore-timeout", index + 1 < arguments.count { named = arguments[index + 1] }
            if argument.hasPrefix("--upgrade-restore-timeout=") { named = String(argument.dropFirst("--upgrade-restore-timeout=".count)) }
        }
        if let value = named.flatMap({ Int($0) }), Limits.upgradeRestoreTimeoutRange.contains(value) { return value }
        return Limits.defaultUpgradeRestoreTimeout
    }

    /// Whether this engine is already the fallback (it must not fall back again).
    static func isFallback(_ arguments: [String]) -> Bool {
        arguments.contains { $0 == "--resume-failed" || $0.hasPrefix("--resume-failed=") }
    }
}

extension Engine {
    /// Restores the handed-over state into this engine (see
    /// `restoreHandoff`), answers whoever asked for the upgrade, and logs
    /// what came over. After this the engine serves: no fallback any more.
    func resume(_ state: ResumedState, previous: LoadedModule?) throws(StartRefused) -> ResumeSummary {
        let summary: ResumeSummary
        state.sockets.restoring()
        do {
            guard let sections = state.sections else { throw HandoffError.invalid("the handoff was restored already") }
            summary = try restoreHandoff(sections, sockets: state.sockets.fds, previous: previous)
            state.releaseSections()
        } catch {
            throw StartRefused("cannot restore: \(error)")
        }
        if let problem = state.sockets.wait() { throw StartRefused("cannot restore: a handed-over \(problem)") }
        Resume.commit(state)
        let now = monotonicNanoseconds()
        let heldMicroseconds = (now - state.engine.holdStartedNanoseconds) / 1000
        let heldMilliseconds = (heldMicroseconds + 500) / 1000
        let started = Resume.programStartedNanoseconds
        let split = started > state.engine.holdStartedNanoseconds
            ? " (until this program started \((started - state.engine.holdStartedNanoseconds) / 1000) us, "
                + "then restoring \((now - started) / 1000) us)" : ""
        let restored = "\(summary.listeners.count) listeners, \(summary.players) players, \(summary.admins) admin, "
            + "\(summary.closing) closing, \(summary.scrapers) metrics (closed once answered), \(world.roomCount) rooms, "
            + "\(world.playerCount) stored players (\(world.dirtyCount) not written yet), "
            + "module \(host.module.name) \(host.module.version)"
            + (host.previousModule.map { " (previous \($0.name) \($0.version))" } ?? "")
        let reply: String
        if let reason = state.failedUpgrade {
            reply = admin.recordUpgradeRefused(
                "\(reason); engine \(EngineIdentity.version) resumed held_ms=\(heldMilliseconds)",
                path: state.engine.enginePath, peer: "engine")
            logger.warning("upgrade: the previous engine \(EngineIdentity.version) resumed in \(heldMicroseconds) us\(split): \(restored)")
        } else {
            reply = admin.recordUpgrade(from: state.engine.fromVersion, path: state.engine.enginePath,
                                        heldMicroseconds: heldMicroseconds, sessions: world.sessionCount)
            logger.notice("upgrade: engine \(state.engine.fromVersion) -> \(EngineIdentity.version) resumed in \(heldMicroseconds) us\(split): \(restored)")
        }
        admin.answerWaiting(reply)
        // The first bytes this engine serves, now: the reply and everything
        // the previous engine left unsent. Left to the loop's flush they
        // would wait for its first poll, which blocks until a timer fires.
        transport.flushAll()
        // Restoring left every handed-over descriptor inheritable (the exec
        // needed that); those this engine keeps get close-on-exec back, or
        // every later child (the next upgrade's check, anything a candidate
        // spawns) would hold the players' sockets, the listeners and the
        // database lock. Not those the process inherited at start: they pass
        // on as they came.
        let inherited = Set(upgrader.settings.inheritedDescriptors)
        let kept = (state.sockets.fds + (state.database?.lockDescriptors ?? [])).filter { !inherited.contains($0) }
        settleOffTheLoop(closing: state.engine.retiredDescriptors, closeOnExec: kept)
        if state.failedUpgrade == nil { measureFirstPoll(holdStarted: state.engine.holdStartedNanoseconds) }
        return summary
    }

    /// `held_ms` ends when this engine has restored everything and queued
    /// its first bytes; a player waits a little longer: the loop's first
    /// poll registers every socket with the new epoll instance before it
    /// reads anything (10–20 ms at 10,000). This records when that first
    /// poll returned (`last_upgrade_first_poll_us` in STATUS, and the log):
    /// an idle handle makes the poll not block, a check handle runs right
    /// after it.
    private func measureFirstPoll(holdStarted: UInt64) {
        final class FirstPoll {
            let idle: UnsafeMutablePointer<uv_idle_t> = .allocateHandle()
            let check: UnsafeMutablePointer<uv_check_t> = .allocateHandle()
            let holdStarted: UInt64
            unowned(unsafe) let engine: Engine
            init(engine: Engine, holdStarted: UInt64) {
                self.engine = engine
                self.holdStarted = holdStarted
            }
        }
        let state = FirstPoll(engine: self, holdStarted: holdStarted)
        let context = UVContext.retainedPointer(to: state)
        uvMust(uv_idle_init(loop, state.idle), "uv_idle_init")
        uvMust(uv_check_init(loop, state.check), "uv_check_init")
        state.idle.pointee.data = context
        state.check.pointee.data = context
        uvMust(uv_idle_start(state.idle) { _ in }, "uv_idle_start")
        uvMust(uv_check_start(state.check) { check in
            let context = check!.pointee.data!
            let state = UVContext.object(context, as: FirstPoll.self)
            let micros = (monotonicNanoseconds() - state.holdStarted) / 1000
            state.engine.admin.recordFirstPoll(microseconds: micros)
            state.engine.logger.notice("upgrade: the new loop's first poll returned \(micros) us after the hold started")
            uv_idle_stop(state.idle)
            uv_check_stop(state.check)
            state.idle.closeAndFree()
            state.check.closeAndFree()
            _ = UVContext.release(context, as: FirstPoll.self)
        }, "uv_check_start")
    }

    /// On a libuv worker: closes the previous engine's epoll instance,
    /// which watched every socket (closing one that watches 10,000 takes
    /// about 8 ms, inside the hold if the exec did it), and sets
    /// close-on-exec on `closeOnExec` again (one `fcntl` each: about 1.5 ms
    /// at 10,000, which the hold need not wait for either). Until the
    /// worker is done the upgrader starts no check (`Upgrader.settling`):
    /// the check's child would inherit the descriptors not yet marked.
    func settleOffTheLoop(closing fds: [Int32], closeOnExec: [Int32]) {
        guard !fds.isEmpty || !closeOnExec.isEmpty else { return }
        upgrader.beginSettling()
        let settle = SettlingDescriptors(engine: self, closing: fds, closeOnExec: closeOnExec)
        let status = UVWork.submit(on: loop, settle, work: { $0.run() }, after: { $0.finished() })
        if status != 0 {
            settle.run()
            settle.finished()
        }
    }
}

/// What a worker does after a resume (`settleOffTheLoop`): only it touches
/// these lists; `finished` runs on the loop.
private final class SettlingDescriptors: @unchecked Sendable {
    unowned(unsafe) let engine: Engine
    let closing: [Int32]
    let closeOnExec: [Int32]
    private var microseconds: UInt64 = 0

    init(engine: Engine, closing: [Int32], closeOnExec: [Int32]) {
        self.engine = engine
        self.closing = closing
        self.closeOnExec = closeOnExec
    }

    func run() {
        let started = monotonicNanoseconds()
        ProcessImage.closeOnExec(closeOnExec)
        microseconds = (monotonicNanoseconds() - started) / 1000
        for fd in closing { close(fd) }
    }

    func finished() {
        engine.logger.info("upgrade: \(closeOnExec.count) handed-over descriptors close-on-exec again in \(microseconds) us (off the loop)")
        engine.upgrader.settled()
    }
}
