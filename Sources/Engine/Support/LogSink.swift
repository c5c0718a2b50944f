import Glibc
import UVKit

/// Log lines on their way to a file descriptor (stderr by default), written
/// by one background thread so that no other thread ever waits on the
/// descriptor's reader.
///
/// The loop thread must never block on I/O, and a log is I/O: a supervisor
/// that stops reading the server's stderr pipe would otherwise freeze the
/// game in write(2) once the pipe's 64 KiB are full. Here a producer only
/// copies its line into memory under a lock held for that copy:
///
///     any thread ── enqueue ──▶ pending (≤ capacity bytes) ──▶ writer thread ──▶ write(fd)
///                      │
///                      └─ over capacity: the line is dropped and counted
///
/// `capacity` bounds the bytes accepted and not yet written (including the
/// batch the writer is writing). A line that does not fit is dropped whole,
/// never split, and `droppedLines` counts it; so does every line the writer
/// had to discard because the descriptor failed (EPIPE: the reader is gone).
/// The writer retries EINTR, waits out EAGAIN, and finishes partial writes.
///
/// `flush(timeout:)` waits, at most `timeout`, until every line accepted
/// before the call is written or discarded: at exit the last lines still
/// reach a live reader, and a reader that stopped reading cannot hang exit.
///
/// Why a `pthread_mutex_t` and two condition variables, not
/// `Synchronization.Mutex`: the writer sleeps until there is work and
/// `flush` until bytes are retired or a monotonic deadline passes, which
/// needs a condition variable bound to the lock (`Mutex` has none). For
/// the same reason the class is `@unchecked Sendable`: every stored
/// property below `mutex` is read and written only with it held.
final class LogSink: @unchecked Sendable {
    static let defaultCapacity = 1 << 20

    let fileDescriptor: Int32
    /// Most bytes accepted and not yet written.
    let capacity: Int

    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    /// Signalled when `pending` stops being empty, and by `stop`.
    private let workAvailable = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    /// Broadcast whenever bytes are retired (written or discarded).
    private let progressed = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var thread = pthread_t()

    // Everything below is guarded by `mutex`.
    /// Lines accepted and not yet taken by the writer, back to back.
    private var pending: [UInt8] = []
    /// The end offset in `pending` of each line (to count lines discarded).
    private var pendingEnds: [Int] = []
    /// Bytes accepted since the start, and bytes written or discarded: their
    /// difference is what the sink holds.
    private var acceptedBytes: UInt64 = 0
    private var retiredBytes: UInt64 = 0
    private var dropped = 0
    /// Lines of the batch the writer holds that are not out yet.
    private var writingLines = 0
    private var stopping = false
    private var writerRunning = true
    private var joined = false

    /// Starts the writer thread. `capacity` is in bytes.
    init(fileDescriptor: Int32 = STDERR_FILENO, capacity: Int = LogSink.defaultCapacity) {
        self.fileDescriptor = fileDescriptor
        self.capacity = max(capacity, 1)
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        // Timed waits (flush) measure from the monotonic clock.
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(workAvailable, &attributes)
        pthread_cond_init(progressed, &attributes)
        pthread_condattr_destroy(&attributes)
        let started = pthread_create(&thread, nil, { context in
            UVContext.release(context!, as: LogSink.self).runWriter()
            return nil
        }, UVContext.retainedPointer(to: self))
        // Without its writer the sink could only drop every line, or write
        // from the caller's thread: neither is acceptable for a server.
        precondition(started == 0, "cannot start the log writer thread: \(String(cString: strerror(started)))")
    }

    deinit {
        // Reached only once the writer has exited (it holds a reference).
        pthread_cond_destroy(workAvailable)
        pthread_cond_destroy(progressed)
        pthread_mutex_destroy(mutex)
        workAvailable.deallocate()
        progressed.deallocate()
        mutex.deallocate()
    }

    // MARK: - Producers (any thread)

    /// Queues one line (its bytes exactly, newline included) and returns at
    /// once; false when it was dropped because the sink is full or stopped.
    @discardableResult
    func enqueue(_ line: String) -> Bool {
        var line = line
        return line.withUTF8 { enqueue(UnsafeRawBufferPointer($0)) }
    }

    @discardableResult
    func enqueue(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count > 0 else { return true }
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        guard !stopping, Int(acceptedBytes - retiredBytes) + bytes.count <= capacity else {
            dropped += 1
            return false
        }
        // The writer waits only while nothing is pending.
        if pending.isEmpty { pthread_cond_signal(workAvailable) }
        pending.append(contentsOf: bytes)
        pendingEnds.append(pending.count)
        acceptedBytes += UInt64(bytes.count)
        return true
    }

    /// Lines dropped so far: refused when full, or discarded on a write error.
    var droppedLines: Int {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return dropped
    }

    /// Bytes accepted and not yet written or discarded.
    var queuedBytes: Int {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return Int(acceptedBytes - retiredBytes)
    }

    /// Lines accepted and not yet written or discarded: an engine upgrade
    /// counts those still here after its bounded flush as dropped (they
    /// die with the exec).
    var queuedLines: Int {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return pendingEnds.count + writingLines
    }

    /// Waits until every line accepted before this call is written (or
    /// discarded), or until `timeout` has passed; true if it got out.
    @discardableResult
    func flush(timeout: Duration) -> Bool {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let (seconds, attoseconds) = timeout.components
        let nanoseconds = Int(deadline.tv_nsec) + Int(max(attoseconds, 0) / 1_000_000_000)
        deadline.tv_sec += Int(max(seconds, 0)) + nanoseconds / 1_000_000_000
        deadline.tv_nsec = nanoseconds % 1_000_000_000
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        let target = acceptedBytes
        while retiredBytes < target && writerRunning {
            if pthread_cond_timedwait(progressed, mutex, &deadline) == ETIMEDOUT { break }
        }
        return retiredBytes >= target
    }

    /// Refuses new lines, lets the writer finish what it holds, and joins
    /// it. The writer may be blocked in write(2) on a reader that does not
    /// read: close that reader first (the rest is then discarded). For
    /// tests; the server's sink lives as long as the process.
    func stop() {
        pthread_mutex_lock(mutex)
        stopping = true
        pthread_cond_signal(workAvailable)
        let join = !joined
        joined = true
        pthread_mutex_unlock(mutex)
        if join { pthread_join(thread, nil) }
    }

    // MARK: - The writer thread

    private func runWriter() {
        // Signals go to the other threads: write(2) here is never cut short
        // by one, and a closed pipe raises SIGPIPE on this thread only, where
        // it stays blocked (write fails with EPIPE instead) even in a process
        // that does not ignore it. The synchronous faults stay deliverable:
        // blocked, a fault here would kill the process with no crash report.
        var all = sigset_t()
        sigfillset(&all)
        for fault in [SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGABRT, SIGSYS] { sigdelset(&all, fault) }
        pthread_sigmask(SIG_BLOCK, &all, nil)

        var batch: [UInt8] = []
        var ends: [Int] = []
        pthread_mutex_lock(mutex)
        while true {
            while pending.isEmpty && !stopping { pthread_cond_wait(workAvailable, mutex) }
            if pending.isEmpty { break }
            swap(&batch, &pending)
            swap(&ends, &pendingEnds)
            writingLines = ends.count
            pthread_mutex_unlock(mutex)
            write(batch, lineEnds: ends)
            batch.removeAll(keepingCapacity: true)
            ends.removeAll(keepingCapacity: true)
            pthread_mutex_lock(mutex)
        }
        writerRunning = false
        pthread_cond_broadcast(progressed)
        pthread_mutex_unlock(mutex)
    }

    /// Writes a batch whole; on an error other than EINTR or EAGAIN, the
    /// unwritten rest is discarded and its lines counted as dropped.
    private func write(_ batch: [UInt8], lineEnds: [Int]) {
        batch.withUnsafeBytes { bytes in
            var offset = 0
            var finished = 0  // lines of the batch wholly written
            while offset < bytes.count {
                let written = Glibc.write(fileDescriptor, bytes.baseAddress! + offset, bytes.count - offset)
                if written > 0 {
                    offset += written
                    let before = finished
                    while finished < lineEnds.count && lineEnds[finished] <= offset { finished += 1 }
                    retire(written, droppedLines: 0, finishedLines: finished - before)
                    continue
                }
                let error = written < 0 ? errno : EIO
                if error == EINTR { continue }
                if error == EAGAIN || error == EWOULDBLOCK {
                    // A non-blocking descriptor: wait until it takes more.
                    var ready = pollfd(fd: fileDescriptor, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&ready, 1, 1000)
                    continue
                }
                // EPIPE (the reader is gone) or a failing descriptor: nothing
                // more of this batch can get out. A line cut short counts.
                var unfinished = 0
                for end in lineEnds.reversed() {
                    if end <= offset { break }
                    unfinished += 1
                }
                retire(bytes.count - offset, droppedLines: unfinished, finishedLines: unfinished)
                return
            }
        }
    }

    private func retire(_ count: Int, droppedLines lines: Int, finishedLines: Int) {
        pthread_mutex_lock(mutex)
        retiredBytes += UInt64(count)
        dropped += lines
        writingLines -= finishedLines
        pthread_cond_broadcast(progressed)
        pthread_mutex_unlock(mutex)
    }
}
