import CLibPQ
import Foundation

/// One libpq connection, used by one thread at a time (its owner holds a
/// lock around it: `PGSlot`). Every call blocks, so the engine makes them
/// on libuv's worker threads only.
///
/// Parameters and results travel in PostgreSQL's binary format: an int8 is
/// 8 bytes big-endian and a bytea its bytes, so nothing is parsed from
/// text and a player's string comes back byte for byte.
final class PGConnection {
    private var handle: OpaquePointer?
    /// What the operator sees (the URL without its password).
    let shown: String

    private init(handle: OpaquePointer, shown: String) {
        self.handle = handle
        self.shown = shown
    }

    deinit { close() }

    /// Opens a connection: at most `connect_timeout` (3 s unless the URL
    /// says otherwise) to connect, every statement bounded by
    /// `statement_timeout` (5 s) on the server and by TCP timeouts on the
    /// client, so a database that hangs or vanishes fails a LOGIN or a
    /// flush in a bounded time instead of holding a worker forever.
    static func connect(_ url: String, statementTimeoutMilliseconds: Int = 5_000) throws(StorageError) -> PGConnection {
        let shown = PGConnection.redacted(url)
        // Our defaults first: libpq takes a keyword's last value, so the
        // URL (expanded from the "dbname" after them, expand_dbname = 1)
        // overrides them when it sets its own.
        // A database host that vanishes without a reset (a partition, a
        // dead machine) must fail a statement in bounded time too, not
        // after the kernel's TCP retries (minutes): data unacknowledged for
        // 10 s, or a silent connection after 5 s plus 3 probes 2 s apart,
        // breaks the connection.
        let keys = ["connect_timeout", "application_name", "tcp_user_timeout", "keepalives", "keepalives_idle",
                    "keepalives_interval", "keepalives_count", "dbname"]
        let values = ["3", "hotswap", "10000", "1", "5", "2", "3", url]
        let handle: OpaquePointer? = keys.withCStrings { keyPointers in
            values.withCStrings { valuePointers in PQconnectdbParams(keyPointers, valuePointers, 1) }
        }
        guard let handle else { throw StorageError("cannot connect to \(shown): out of memory", transient: true) }
        guard PQstatus(handle) == CONNECTION_OK else {
            let message = PGConnection.message(PQerrorMessage(handle))
            PQfinish(handle)
            throw StorageError("cannot connect to \(shown): \(message)", transient: true)
        }
        // Non-blocking: no send or receive may wait past a statement's
        // deadline (`awaitResult`).
        guard PQsetnonblocking(handle, 1) == 0 else {
            PQfinish(handle)
            throw StorageError("cannot connect to \(shown): cannot make the connection non-blocking", transient: true)
        }
        let connection = PGConnection(handle: handle, shown: shown)
        _ = try connection.execute("SET statement_timeout = \(statementTimeoutMilliseconds)")
        // Player keys and names are UTF-8 on the wire, whatever the server's locale.
        _ = try connection.execute("SET client_encoding = 'UTF8'")
        return connection
    }

    /// The connection broke (the server went away): the owner connects again.
    var isBroken: Bool { handle.map { PQstatus($0) != CONNECTION_OK } ?? true }

    func close() {
        if let handle { PQfinish(handle) }
        handle = nil
    }

    /// Runs one statement with parameters; throws the server's message,
    /// transient when the connection or the server's state is at fault
    /// rather than the statement (`isTransient`).
    @discardableResult
    func execute(_ sql: String, _ parameters: [PGValue?] = []) throws(StorageError) -> PGResult {
        guard let handle else { throw StorageError("connection to \(shown) is closed", transient: true) }
        var types: [Oid] = []
        var buffers: [[UInt8]] = []
        var present: [Bool] = []
        types.reserveCapacity(parameters.count)
        for parameter in parameters {
            let (type, bytes) = parameter?.encoded ?? (0, [])
            types.append(type)
            buffers.append(bytes)
            present.append(parameter != nil)
        }
        let lengths = buffers.map { Int32($0.count) }
        let formats = [Int32](repeating: 1, count: parameters.count)
        let sent = withPointers(buffers, present) { pointers in
            PQsendQueryParams(handle, sql, Int32(parameters.count), types, pointers, lengths, formats, 1)
        }
        return PGResult(try awaitResult(sent: sent))
    }

    /// Runs several statements without parameters (a layout's DDL), in
    /// the simple query protocol, which takes more than one.
    func executeScript(_ sql: String) throws(StorageError) {
        guard let handle else { throw StorageError("connection to \(shown) is closed", transient: true) }
        _ = try awaitResult(sent: PQsendQuery(handle, sql))
    }

    /// How long a statement may go unanswered on the client's side: the
    /// server's own `statement_timeout` (5 s) and 2 s more. A server that
    /// is stopped (SIGSTOP, a hung host whose kernel still acknowledges)
    /// never enforces its own timeout; this does, and drops the connection.
    static let answerTimeoutNanoseconds: UInt64 = 7_000_000_000

    /// Sends what is queued and waits for the statement's results without
    /// ever blocking past the deadline (the connection is non-blocking);
    /// returns its result (the first error, if one statement failed), or
    /// throws and closes the connection when the server did not answer.
    private func awaitResult(sent: Int32) throws(StorageError) -> OpaquePointer {
        guard let handle else { throw StorageError("connection to \(shown) is closed", transient: true) }
        // A transport error leaves the connection in no known state:
        // it is dropped (the slot connects again), never reused.
        func broken() -> StorageError {
            let error = StorageError("\(shown): \(PGConnection.message(PQerrorMessage(handle)))", transient: true)
            close()
            return error
        }
        guard sent == 1 else { throw broken() }
        let deadline = DispatchTime.now().uptimeNanoseconds + Self.answerTimeoutNanoseconds
        func wait(for events: Int16) throws(StorageError) {
            let now = DispatchTime.now().uptimeNanoseconds
            guard now < deadline else {
                close()
                throw StorageError("\(shown): no answer within \(Self.answerTimeoutNanoseconds / 1_000_000_000) s; connection dropped",
                                   transient: true)
            }
            var descriptor = pollfd(fd: PQsocket(handle), events: events, revents: 0)
            let ready = poll(&descriptor, 1, Int32(min((deadline - now) / 1_000_000 + 1, 1000)))
            if ready < 0 && errno != EINTR {
                close()
                throw StorageError("\(shown): poll failed: \(String(cString: strerror(errno)))", transient: true)
            }
        }
        // What is queued goes out first.
        while true {
            let flushed = PQflush(handle)
            if flushed == 0 { break }
            if flushed < 0 { throw broken() }
            try wait(for: Int16(POLLOUT | POLLIN))
            if PQconsumeInput(handle) == 0 { throw broken() }
        }
        var kept: OpaquePointer?
        while true {
            while PQisBusy(handle) != 0 {
                do throws(StorageError) {
                    try wait(for: Int16(POLLIN))
                } catch {
                    if let kept { PQclear(kept) }
                    throw error
                }
                if PQconsumeInput(handle) == 0 {
                    if let kept { PQclear(kept) }
                    throw broken()
                }
            }
            guard let result = PQgetResult(handle) else { break }
            // The first error is the one to tell; else the last result.
            if let previous = kept, PGConnection.failed(previous) {
                PQclear(result)
            } else {
                if let kept { PQclear(kept) }
                kept = result
            }
        }
        guard let kept else { throw broken() }
        guard !PGConnection.failed(kept) else {
            let state = PQresultErrorField(kept, Int32(UInt8(ascii: "C"))).map { String(cString: $0) } ?? ""
            let message = PGConnection.message(PQresultErrorMessage(kept))
            PQclear(kept)
            throw StorageError("\(shown): \(message)", transient: PGConnection.isTransient(sqlState: state) || isBroken)
        }
        return kept
    }

    private static func failed(_ result: OpaquePointer) -> Bool {
        let status = PQresultStatus(result)
        return status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK
    }

    /// SQLSTATE classes that may clear by themselves: connection failures
    /// (08), a server shutting down or restarting (57P), too many
    /// connections or a full disk (53), a serialization failure or
    /// deadlock (40), a cancelled statement (57014, our statement_timeout).
    static func isTransient(sqlState: String) -> Bool {
        sqlState.hasPrefix("08") || sqlState.hasPrefix("53") || sqlState.hasPrefix("40") || sqlState.hasPrefix("57")
    }

    /// The URL without its password, for logs and STATUS.
    static func redacted(_ url: String) -> String {
        guard let at = url.firstIndex(of: "@"), let scheme = url.range(of: "://"), scheme.upperBound < at else { return url }
        let credentials = url[scheme.upperBound..<at]
        guard let colon = credentials.firstIndex(of: ":") else { return url }
        return String(url[..<colon]) + ":***" + String(url[at...])
    }

    private static func message(_ text: UnsafePointer<CChar>?) -> String {
        guard let text else { return "unknown error" }
        return String(cString: text).trimmingCharacters(in: .whitespacesAndNewlines)
            .replacingOccurrences(of: "\n", with: "; ")
    }

    /// The buffers copied into one arena that lives for the call, as
    /// libpq's array of value pointers (nil for a NULL parameter).
    private func withPointers<R>(_ buffers: [[UInt8]], _ present: [Bool],
                                 _ body: ([UnsafePointer<CChar>?]) -> R) -> R
    {
        let total = buffers.reduce(0) { $0 + $1.count }
        let arena = UnsafeMutableRawPointer.allocate(byteCount: max(total, 1), alignment: 8)
        defer { arena.deallocate() }
        var offset = 0
        var pointers: [UnsafePointer<CChar>?] = []
        pointers.reserveCapacity(buffers.count)
        for (index, buffer) in buffers.enumerated() {
            buffer.withUnsafeBytes { source in
                if !source.isEmpty { (arena + offset).copyMemory(from: source.baseAddress!, byteCount: source.count) }
            }
            pointers.append(present[index] ? UnsafePointer((arena + offset).assumingMemoryBound(to: CChar.self)) : nil)
            offset += buffer.count
        }
        return body(pointers)
    }
}

/// A parameter in binary format.
enum PGValue {
    case int(Int64)
    case bytes([UInt8])
    case text(String)
    case bool(Bool)

    /// Its type OID and bytes.
    var encoded: (Oid, [UInt8]) {
        switch self {
        case .int(let value): (20, withUnsafeBytes(of: value.bigEndian) { Array($0) })
        case .bytes(let bytes): (17, bytes)
        case .text(let text): (25, Array(text.utf8))
        case .bool(let value): (16, [value ? 1 : 0])
        }
    }

    init(_ stored: StoredValue) {
        switch stored {
        case .int(let value): self = .int(value)
        case .string(let bytes): self = .bytes(bytes)
        }
    }
}

/// A result in binary format; freed when dropped.
final class PGResult {
    private let result: OpaquePointer

    fileprivate init(_ result: OpaquePointer) { self.result = result }
    deinit { PQclear(result) }

    var rowCount: Int { Int(PQntuples(result)) }
    var columnCount: Int { Int(PQnfields(result)) }
    /// Rows an UPDATE or DELETE touched.
    var affected: Int { Int(String(cString: PQcmdTuples(result))) ?? 0 }

    func columnName(_ column: Int) -> String { String(cString: PQfname(result, Int32(column))) }

    func isNull(_ row: Int, _ column: Int) -> Bool { PQgetisnull(result, Int32(row), Int32(column)) != 0 }

    /// The raw bytes of a value (nil for NULL).
    func bytes(_ row: Int, _ column: Int) -> [UInt8]? {
        guard !isNull(row, column), let value = PQgetvalue(result, Int32(row), Int32(column)) else { return nil }
        let length = Int(PQgetlength(result, Int32(row), Int32(column)))
        return value.withMemoryRebound(to: UInt8.self, capacity: length) { Array(UnsafeBufferPointer(start: $0, count: length)) }
    }

    /// An int8 (or int4, bool) value; nil for NULL or another type.
    func int(_ row: Int, _ column: Int) -> Int64? {
        guard let bytes = bytes(row, column) else { return nil }
        switch bytes.count {
        case 8: return bytes.reduce(0) { $0 << 8 | Int64($1) }
        case 4: return Int64(Int32(bitPattern: bytes.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }))
        case 1: return Int64(bytes[0])
        default: return nil
        }
    }

    func text(_ row: Int, _ column: Int) -> String? { bytes(row, column).map { String(decoding: $0, as: UTF8.self) } }
}

private extension Array where Element == String {
    /// The strings as NUL-terminated C strings, with a NULL after the last
    /// (libpq's keyword arrays).
    func withCStrings<R>(_ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
        let copies = map { strdup($0) }
        defer { copies.forEach { free($0) } }
        let pointers = copies.map { UnsafePointer($0) } + [nil]
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}
