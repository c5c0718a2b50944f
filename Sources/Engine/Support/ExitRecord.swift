import FaultGuard
import Glibc

/// How the previous run of this server ended, read at start from the exit
/// record beside the database (`<database>.last-exit`), so STATUS and the
/// log can tell an operator why the supervisor restarted it.
///
/// The file holds one line for this run and, on a second line, what the
/// previous run's was:
///
///     running pid=812 since=1796430000        while serving
///     crash signal=SIGABRT pid=812 module=gems@1.1.0 call=hotswap_handle why=...
///                                             written by the fault guard's
///                                             handler as the process dies
///     stopped status=0 pid=812 why=SIGTERM, final flush wrote 12 records
///                                             written after the last flush
///
/// A `running` line found at start means the process ended without a word:
/// SIGKILL, the kernel's out-of-memory killer, a power cut. An engine
/// upgrade (same process, new image) keeps the previous run's line: it is
/// not an exit.
///
/// Why beside the database: it is the one path a server owns exclusively
/// (the database lock), and it is where a supervisor keeps state
/// (StateDirectory=). Without a database there is no record.
final class ExitRecord {
    /// What STATUS shows: `none` (first start, or no record), `clean`,
    /// `failed` (stopped with a non-zero status), `crash:SIGSEGV`, `killed`.
    let previousSummary: String
    /// The previous run's line as written, for the start-up log.
    let previousLine: String?
    private let path: String
    private let fd: Int32

    /// Opens (creating) the record at `path`, reads the previous run's
    /// line, and marks this run as running. `resumed`: this process is an
    /// engine upgrade's new image, whose previous run is its predecessor's.
    init(path: String, resumed: Bool) throws(ExitRecordError) {
        self.path = path
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ExitRecordError(path: path, reason: String(cString: strerror(errno))) }
        let lines = ExitRecord.read(fd).split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        let previous = resumed ? lines.dropFirst().first : lines.first
        previousLine = previous
        previousSummary = previous.map(ExitRecord.summary) ?? "none"
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        rewrite("running pid=\(getpid()) since=\(now.tv_sec)\n" + (previous.map { "\($0)\n" } ?? ""))
        // Once per start: a power cut right after it must not leave an
        // empty file that reads as "none".
        fsync(fd)
        fg_set_exit_record(fd)
    }

    deinit {
        fg_set_exit_record(-1)
        close(fd)
    }

    /// The start was refused after the record was opened: a fresh start
    /// says so (exit status 2); a resumed engine that cannot start goes on
    /// as the previous engine (the fallback), whose record this stays.
    func startRefused(resumed: Bool) {
        fg_set_exit_record(-1)
        if !resumed { rewrite("stopped status=2 pid=\(getpid()) why=the start was refused (the log says why)\n") }
    }

    /// The process is about to exit on its own with `status`: the last
    /// line it writes (off the loop: the loop has stopped).
    func stopped(status: Int32, why: String) {
        fg_set_exit_record(-1)
        rewrite("stopped status=\(status) pid=\(getpid()) why=\(why)\n")
    }

    /// STATUS's token for a recorded line.
    static func summary(_ line: String) -> String {
        let words = line.split(separator: " ")
        let field = { (key: String) in words.first { $0.hasPrefix("\(key)=") }.map { String($0.dropFirst(key.count + 1)) } }
        switch words.first {
        case "crash": return "crash:\(field("signal") ?? "unknown")"
        case "stopped": return field("status") == "0" ? "clean" : "failed"
        case "running": return "killed"
        default: return "unknown"
        }
    }

    private func rewrite(_ text: String) {
        _ = lseek(fd, 0, SEEK_SET)
        _ = ftruncate(fd, 0)
        var bytes = Array(text.utf8)
        var done = 0
        while done < bytes.count {
            let put = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
            if put < 0 && errno == EINTR { continue }
            if put <= 0 { break }
            done += put
        }
    }

    private static func read(_ fd: Int32) -> String {
        var bytes = [UInt8](repeating: 0, count: 4096)
        let got = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        return got > 0 ? String(decoding: bytes[0..<got], as: UTF8.self) : ""
    }
}

/// Why the exit record could not be opened (a read-only directory, ...).
struct ExitRecordError: Error, CustomStringConvertible {
    let path: String
    let reason: String
    var description: String { "cannot open the exit record \(path): \(reason); STATUS previous_exit stays unrecorded" }
}
