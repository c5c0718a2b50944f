import CLibUV
import UVKit

/// `--watch`: reloads the module by itself when a new build lands.
///
/// It watches the module's directory, not the file: builds usually write a
/// new file and rename it over the old one, which a watch on the file's
/// inode would miss. Events are debounced (a build touches the file several
/// times), a file whose content did not change is skipped (the hash is
/// taken on the reload's worker thread, never on the loop), and a file that
/// fails to load in a way that may pass (most likely still being written)
/// is retried a few times before the failure is reported.
final class ModuleWatcher {
    unowned(unsafe) let engine: Engine
    let path: String
    private let fileName: String
    private let event: UnsafeMutablePointer<uv_fs_event_t>
    private let timer: UnsafeMutablePointer<uv_timer_t>
    private var retries = 0
    /// The content last acted on (loaded or refused): an event that leaves
    /// the file as it was does nothing, even after an admin ROLLBACK.
    private var lastSeenSHA256: String

    static let debounceMilliseconds: UInt64 = 300
    static let retryMilliseconds: UInt64 = 500
    static let maxRetries = 10

    init(engine: Engine, path: String) {
        self.engine = engine
        self.path = path
        fileName = path.split(separator: "/").last.map(String.init) ?? path
        lastSeenSHA256 = engine.host.module.sha256
        event = .allocateHandle()
        timer = .allocateHandle()
        uvMust(uv_fs_event_init(engine.loop, event), "uv_fs_event_init")
        uvMust(uv_timer_init(engine.loop, timer), "uv_timer_init")
        event.context = UVContext.pointer(to: self)
        timer.context = event.context
    }

    func start() throws(UVError) {
        let directory = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        try UVError.check(uv_fs_event_start(event, { handle, name, _, status in
            let watcher = UVContext.object(handle!.pointee.data, as: ModuleWatcher.self)
            if status != 0 {
                // Overflowed or lost the directory: say so, and look anyway.
                watcher.engine.logger.warning("watch: event error \(UVError(status)); checking the file")
            } else {
                guard let name, String(cString: name) == watcher.fileName else { return }
            }
            watcher.retries = 0
            watcher.schedule(after: ModuleWatcher.debounceMilliseconds)
        }, directory.isEmpty ? "." : directory, 0))
    }

    private func schedule(after milliseconds: UInt64) {
        uvMust(uv_timer_start(timer, { timer in
            UVContext.object(timer!.pointee.data, as: ModuleWatcher.self).fire()
        }, milliseconds, 0), "uv_timer_start")
    }

    private func fire() {
        guard !engine.shuttingDown else { return }
        engine.host.reload(path: path, unlessSHA256: lastSeenSHA256) { [weak self] outcome in
            guard let self else { return }
            switch outcome {
            case .success(.unchanged):
                return
            case .success(.swapped(let report)):
                // The content actually loaded (the file may have changed
                // again between the event and the worker's copy).
                lastSeenSHA256 = report.to.sha256
            case .failure(.busy):
                // Another reload ends by itself (one that migrates a million
                // stored players may take seconds): wait for it, however
                // long, without spending retries meant for a file still
                // being written.
                engine.logger.info("watch: another reload is in progress; trying again when it is done")
                return schedule(after: ModuleWatcher.retryMilliseconds)
            case .failure(.load(let error)) where error.isTransient:
                return retry(reason: "\(error)")
            case .failure:
                // Refused for good: wait for a build with other content.
                if let sha = engine.host.lastLoadSHA256 { lastSeenSHA256 = sha }
            }
            _ = engine.admin.record("WATCH \(path)", outcome, peer: "watch", path: path)
        }
    }

    private func retry(reason: String) {
        guard retries < ModuleWatcher.maxRetries else {
            engine.logger.error("watch: giving up on \(path) after \(retries) retries: \(reason)")
            return
        }
        retries += 1
        engine.logger.info("watch: not loadable yet (\(reason)); retry \(retries) of \(ModuleWatcher.maxRetries)")
        schedule(after: ModuleWatcher.retryMilliseconds)
    }

    /// Closes both handles; they are freed in their close callbacks.
    func stop() {
        event.closeAndFree()
        timer.closeAndFree()
    }
}
