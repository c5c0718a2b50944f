import CLibUV
import Glibc
import UVKit

/// Runs a candidate engine with `--check-upgrade` (and this engine's own
/// arguments, so it also proves it accepts them) and reads the one line it
/// must print, without ever blocking the loop: `uv_spawn`, its stdout and
/// stderr read through libuv pipes, and a timer.
///
///     candidate --check-upgrade ARGS   ──▶  "hotswap-engine 1.1.0+eaae… handoff 1-1", exit 0
///
/// Anything else is a refusal with the reason: it cannot be spawned (not
/// found, not executable), it exits non-zero or dies from a signal, prints
/// something else, or has not exited within the timeout (it is then
/// killed). `done` is called once, on the loop.
final class UpgradeCheck {
    /// What the candidate said it is.
    struct Answer: Equatable {
        let version: String
        /// The handoff formats it reads.
        let formats: ClosedRange<UInt32>
    }

    private let loop: UnsafeMutablePointer<uv_loop_t>
    let path: String
    private let arguments: [String]
    private let timeoutMilliseconds: Int
    private var done: ((Result<Answer, UpgradeRefusal>) -> Void)?

    private let process: UnsafeMutablePointer<uv_process_t> = .allocateHandle()
    private let output: UnsafeMutablePointer<uv_pipe_t> = .allocateHandle()
    private let errors: UnsafeMutablePointer<uv_pipe_t> = .allocateHandle()
    private let timer: UnsafeMutablePointer<uv_timer_t> = .allocateHandle()
    /// What it printed (the first 4 KiB of each stream is plenty for one line).
    private var stdoutBytes: [UInt8] = []
    private var stderrBytes: [UInt8] = []
    private var openStreams = 2
    private var exit: (status: Int64, signal: Int32)?
    private var timedOut = false
    /// The +1 reference the handles hold (UVContext), until `finish`.
    private var retained: UnsafeMutableRawPointer?
    private static let keep = 4096

    init(loop: UnsafeMutablePointer<uv_loop_t>, path: String, arguments: [String], timeoutMilliseconds: Int,
         done: @escaping (Result<Answer, UpgradeRefusal>) -> Void)
    {
        self.loop = loop
        self.path = path
        self.arguments = arguments
        self.timeoutMilliseconds = timeoutMilliseconds
        self.done = done
    }

    /// Spawns the candidate. A spawn failure is reported through `done`
    /// before this returns.
    func start() {
        // The handles hold this object until they are closed (`finish`).
        let context = UVContext.retainedPointer(to: self)
        retained = context
        for pipe in [output, errors] {
            uvMust(uv_pipe_init(loop, pipe, 0), "uv_pipe_init")
            pipe.context = context
        }
        uvMust(uv_timer_init(loop, timer), "uv_timer_init")
        timer.context = context
        process.context = context

        var stdio = [uv_stdio_container_t](repeating: uv_stdio_container_t(), count: 3)
        stdio[0].flags = UV_IGNORE
        stdio[1].flags = uv_stdio_flags(UV_CREATE_PIPE.rawValue | UV_WRITABLE_PIPE.rawValue)
        stdio[1].data.stream = output.stream
        stdio[2].flags = uv_stdio_flags(UV_CREATE_PIPE.rawValue | UV_WRITABLE_PIPE.rawValue)
        stdio[2].data.stream = errors.stream
        let argv = ([path, "--check-upgrade"] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let status = path.withCString { file in
            argv.withUnsafeBufferPointer { args in
                stdio.withUnsafeMutableBufferPointer { containers in
                    var options = uv_process_options_t()
                    options.exit_cb = { process, status, signal in
                        UpgradeCheck.from(process).exited(status: status, signal: signal)
                    }
                    options.file = file
                    // Its own session and process group: a check that hangs
                    // is ended with everything it started (`killGroup`).
                    options.flags = UV_PROCESS_DETACHED.rawValue
                    options.args = UnsafeMutablePointer(mutating: args.baseAddress)
                    options.stdio_count = 3
                    options.stdio = containers.baseAddress
                    return uv_spawn(loop, process, &options)
                }
            }
        }
        guard status == 0 else {
            let reason = status == UV_EACCES.rawValue ? "\(path) is not executable (permission denied)"
                : "cannot run \(path): \(UVError(status))"
            report(.failure(UpgradeRefusal(reason)))
            return
        }
        for pipe in [output, errors] {
            let reading = uv_read_start(pipe.stream, { handle, suggested, buffer in
                buffer!.pointee = uv_buf_init(UnsafeMutablePointer<CChar>.allocate(capacity: 4096), 4096)
            }, { stream, count, buffer in
                let check = UpgradeCheck.from(stream)
                if count > 0, let base = buffer?.pointee.base {
                    check.received(UnsafeRawBufferPointer(start: base, count: count), errors: stream == check.errors.stream)
                } else if count < 0 {
                    uv_read_stop(stream)
                    check.streamEnded()
                }
                buffer?.pointee.base?.deallocate()
            })
            if reading != 0 {
                // Nothing will come from this stream: it counts as ended, and
                // the check is judged on the exit and what the other said.
                streamEnded()
            }
        }
        uvMust(uv_timer_start(timer, { timer in UpgradeCheck.from(timer).timedOutNow() }, UInt64(timeoutMilliseconds), 0), "uv_timer_start")
    }

    /// Stops waiting (the server is shutting down): the candidate is killed
    /// and `done` is not called.
    func cancel() {
        done = nil
        killGroup()
        if exit == nil { uv_process_kill(process, SIGKILL) }
        finish()
    }

    /// Ends every process the check started (its group: it is the group's
    /// leader, see `start`), so nothing it left running outlives it. The
    /// group id is not reused while any member lives, so after the leader
    /// was reaped this still names only what it started, or nothing.
    private func killGroup() {
        let pid = process.pointee.pid
        if pid > 0 { kill(-pid, SIGKILL) }
    }

    private static func from<Handle>(_ handle: UnsafeMutablePointer<Handle>?) -> UpgradeCheck {
        UVContext.object(UnsafeMutableRawPointer(handle!).assumingMemoryBound(to: uv_handle_t.self).pointee.data,
                         as: UpgradeCheck.self)
    }

    private func received(_ bytes: UnsafeRawBufferPointer, errors fromStderr: Bool) {
        if fromStderr {
            stderrBytes.append(contentsOf: bytes.prefix(max(UpgradeCheck.keep - stderrBytes.count, 0)))
        } else {
            stdoutBytes.append(contentsOf: bytes.prefix(max(UpgradeCheck.keep - stdoutBytes.count, 0)))
        }
    }

    private func streamEnded() {
        openStreams -= 1
        evaluateIfDone()
    }

    private func exited(status: Int64, signal: Int32) {
        exit = (status, signal)
        evaluateIfDone()
    }

    private func timedOutNow() {
        timedOut = true
        killGroup()
        if exit == nil {
            uv_process_kill(process, SIGKILL)
        } else {
            // It exited but something it started holds its output open.
            evaluateIfDone()
        }
    }

    /// Once it exited and its output ended (or the timer gave up on it).
    private func evaluateIfDone() {
        guard let exit, openStreams == 0 || timedOut, done != nil else { return }
        report(verdict(exit))
    }

    private func verdict(_ exit: (status: Int64, signal: Int32)) -> Result<Answer, UpgradeRefusal> {
        let printed = String(decoding: stdoutBytes, as: UTF8.self)
        let complaint = UpgradeCheck.firstLine(stderrBytes).map { ": \($0)" } ?? ""
        if timedOut && (exit.signal == SIGKILL || openStreams > 0) {
            return .failure(UpgradeRefusal("the check of \(path) did not finish within \(timeoutMilliseconds) ms"))
        }
        if exit.signal != 0 {
            return .failure(UpgradeRefusal("the check of \(path) died from \(FaultRecord.signalName(exit.signal))\(complaint)"))
        }
        if exit.status != 0 {
            return .failure(UpgradeRefusal("the check of \(path) exited with status \(exit.status)\(complaint)"))
        }
        guard let answer = EngineIdentity.parseCheckLine(printed) else {
            let first = UpgradeCheck.firstLine(stdoutBytes) ?? ""
            return .failure(UpgradeRefusal(
                "the check of \(path) printed '\(first)', not 'hotswap-engine VERSION handoff A-B'"))
        }
        return .success(Answer(version: answer.version, formats: answer.formats))
    }

    private static func firstLine(_ bytes: [UInt8]) -> String? {
        let line = bytes.split(separator: 0x0A, omittingEmptySubsequences: true).first.map { Array($0.prefix(200)) }
        return line.map { String(decoding: $0, as: UTF8.self) }
    }

    /// Closes the handles first: the answer may go on to exec the
    /// candidate, and a refusal may start another check.
    private func report(_ result: Result<Answer, UpgradeRefusal>) {
        let done = self.done
        self.done = nil
        killGroup()
        finish()
        done?(result)
    }

    /// Closes every handle; the object goes once they are.
    private func finish() {
        guard let retained else { return }
        self.retained = nil
        uv_timer_stop(timer)
        for handle in [process.handle, output.handle, errors.handle, timer.handle] where uv_is_closing(handle) == 0 {
            handle.pointee.data = nil
            uv_close(handle) { handle in handle?.deallocate() }
        }
        _ = UVContext.release(retained, as: UpgradeCheck.self)
    }
}

/// Why an upgrade was refused; the running engine carries on untouched.
struct UpgradeRefusal: Error, CustomStringConvertible, Sendable {
    let description: String
    init(_ description: String) { self.description = description }
}
