import Protocol

/// An HTTP/1.x request head, reduced to what the metrics port answers:
/// no strings, so parsing one allocates nothing.
struct HTTPRequestHead: Equatable, Sendable {
    enum Method: Equatable, Sendable {
        case get, head
        /// Any other (syntactically valid) method: answered 405.
        case other
    }

    /// The path of the request target (a query is ignored).
    enum Target: Equatable, Sendable {
        case metrics, healthz, readyz
        /// Any other target, including the absolute form: answered 404.
        case other
    }

    var method: Method
    var target: Target
    /// The minor version of `HTTP/1.x`.
    var minorVersion: Int
    /// Whether the client keeps the connection for another request:
    /// HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with
    /// `Connection: keep-alive` (RFC 9112 §9.3).
    var keepAlive: Bool
}

/// Why a request was refused (answered 400, then the connection closes:
/// after a bad request the stream cannot be trusted to resynchronise).
enum HTTPRequestError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The head (request line, headers, line ends) passed the byte limit.
    case headTooLarge
    case tooManyHeaders
    /// Not `METHOD SP target SP HTTP/1.x`.
    case badRequestLine
    /// A field line that is not `name: value` (whitespace before the colon,
    /// an obsolete line folding, a control byte in the value).
    case badHeader
    /// HTTP/1.1 without `Host`, or more than one `Host` (RFC 9112 §3.2).
    case badHost
    /// A body was announced: the metrics port accepts none.
    case bodyNotAccepted
    case badContentLength

    var description: String {
        switch self {
        case .headTooLarge: "request head too large"
        case .tooManyHeaders: "too many header fields"
        case .badRequestLine: "malformed request line"
        case .badHeader: "malformed header field"
        case .badHost: "missing or repeated Host header"
        case .bodyNotAccepted: "request bodies are not accepted"
        case .badContentLength: "malformed Content-Length"
        }
    }
}

/// Splits the bytes of one HTTP/1.x connection into request heads,
/// pipelined requests included, without copying complete lines.
///
/// Framing is `LineFramer`'s (in `Protocol`): a line ends at LF, one CR
/// before it is dropped, complete lines are handed over as pointers into
/// the chunk being fed and only an unfinished tail is copied. On top of it
/// this keeps the state of the head in progress (a few integers), so a
/// request split over any number of reads parses exactly as it would in
/// one (the unit tests feed random splits).
///
/// Bounds: a head (request line, fields, their line ends counted as CRLF,
/// and empty lines before the request line) may take at most
/// `maxHeadBytes`, with at most `maxHeaderCount` fields; an unfinished head
/// counts what is buffered. Nothing beyond the limit is stored. The first
/// error ends parsing for good, like `LineFramer`'s over-long line.
///
/// What it accepts is deliberately narrow (it serves GET and HEAD of three
/// paths to a scraper): no request body (`Content-Length` other than 0 and
/// any `Transfer-Encoding` are refused), no obsolete line folding, HTTP/1.x
/// only.
struct HTTPRequestParser: Sendable {
    /// How feeding one chunk ended.
    enum Outcome: Equatable, Sendable {
        /// Every complete request was delivered; a partial one is kept.
        case needMoreData
        /// The request handler asked to stop; the rest of the chunk was dropped.
        case stopped
        /// The stream is malformed or over a limit; parsing is over.
        case invalid(HTTPRequestError)
    }

    let maxHeadBytes: Int
    let maxHeaderCount: Int
    private var framer: LineFramer
    private var head = HeadInProgress()
    private var failure: HTTPRequestError?

    init(maxHeadBytes: Int, maxHeaderCount: Int = 64) {
        precondition(maxHeadBytes >= 16 && maxHeaderCount >= 1)
        self.maxHeadBytes = maxHeadBytes
        self.maxHeaderCount = maxHeaderCount
        // A single line may fill the whole budget; `feed` checks the total.
        framer = LineFramer(maxLineLength: maxHeadBytes)
    }

    /// Whether bytes of a request that is not complete yet have arrived:
    /// the connection's header deadline runs while this is true. False once
    /// parsing failed (no request will complete).
    var inRequest: Bool { failure == nil && (head.bytes > 0 || framer.bufferedByteCount > 0) }

    /// Parses `chunk`, calling `onRequest` for each complete head in order.
    /// Return `false` from `onRequest` to stop (the connection is closing).
    mutating func feed(_ chunk: UnsafeRawBufferPointer, onRequest: (HTTPRequestHead) -> Bool) -> Outcome {
        if let failure { return .invalid(failure) }
        // The head in progress is a local copy while the framer runs, so
        // the line closure does not capture `self` during `framer.feed`.
        var head = self.head
        var error: HTTPRequestError?
        let limits = (bytes: maxHeadBytes, headers: maxHeaderCount)
        let framed = framer.feed(chunk) { line in
            switch head.take(line, limits: limits) {
            case .more:
                return true
            case .failed(let reason):
                error = reason
                return false
            case .complete(let request):
                head = HeadInProgress()
                return onRequest(request)
            }
        }
        self.head = head
        if framed == .lineTooLong { error = .headTooLarge }
        if error == nil, framed == .needMoreData, head.bytes + framer.bufferedByteCount > maxHeadBytes {
            error = .headTooLarge
        }
        if let error {
            failure = error
            return .invalid(error)
        }
        return framed == .stopped ? .stopped : .needMoreData
    }
}

/// The head being parsed: which part comes next and what was seen so far.
private struct HeadInProgress {
    enum Step {
        case more
        case complete(HTTPRequestHead)
        case failed(HTTPRequestError)
    }

    var bytes = 0
    private var sawRequestLine = false
    private var headers = 0
    private var request = HTTPRequestHead(method: .other, target: .other, minorVersion: 1, keepAlive: true)
    private var hosts = 0
    private var close = false
    private var keepAlive = false

    /// Takes one line of the head (terminator removed).
    mutating func take(_ line: UnsafeRawBufferPointer, limits: (bytes: Int, headers: Int)) -> Step {
        bytes += line.count + 2
        if bytes > limits.bytes { return .failed(.headTooLarge) }
        guard sawRequestLine else {
            // RFC 9112 §2.2: empty lines before the request line are ignored
            // (they still count against the limit).
            if line.isEmpty { return .more }
            guard let parsed = HeadInProgress.requestLine(line) else { return .failed(.badRequestLine) }
            request = parsed
            sawRequestLine = true
            return .more
        }
        if line.isEmpty { return finish() }
        headers += 1
        if headers > limits.headers { return .failed(.tooManyHeaders) }
        return field(line)
    }

    private func finish() -> Step {
        if request.minorVersion >= 1 ? hosts != 1 : hosts > 1 { return .failed(.badHost) }
        var complete = request
        complete.keepAlive = !close && (request.minorVersion >= 1 || keepAlive)
        return .complete(complete)
    }

    /// `METHOD SP request-target SP HTTP/1.x`, single spaces (RFC 9112 §3).
    private static func requestLine(_ line: UnsafeRawBufferPointer) -> HTTPRequestHead? {
        guard let first = line.firstIndex(of: 0x20) else { return nil }
        let afterMethod = first + 1
        guard let second = line[afterMethod...].firstIndex(of: 0x20) else { return nil }
        let method = UnsafeRawBufferPointer(rebasing: line[0..<first])
        let target = UnsafeRawBufferPointer(rebasing: line[afterMethod..<second])
        let version = UnsafeRawBufferPointer(rebasing: line[(second + 1)...])
        guard !method.isEmpty, method.allSatisfy(isTokenByte), !target.isEmpty,
            target.allSatisfy({ $0 > 0x20 && $0 < 0x7F }), version.count == 8,
            version.starts(with: "HTTP/1.".utf8), (0x30...0x39).contains(version[7])
        else { return nil }
        return HTTPRequestHead(method: methodOf(method), target: targetOf(target),
                               minorVersion: Int(version[7] - 0x30), keepAlive: true)
    }

    private static func methodOf(_ bytes: UnsafeRawBufferPointer) -> HTTPRequestHead.Method {
        // Methods are case-sensitive (RFC 9110 §9.1): `get` is not GET.
        if bytes.elementsEqual("GET".utf8) { return .get }
        if bytes.elementsEqual("HEAD".utf8) { return .head }
        return .other
    }

    private static func targetOf(_ bytes: UnsafeRawBufferPointer) -> HTTPRequestHead.Target {
        let path = UnsafeRawBufferPointer(rebasing: bytes[..<(bytes.firstIndex(of: UInt8(ascii: "?")) ?? bytes.count)])
        if path.elementsEqual("/metrics".utf8) { return .metrics }
        if path.elementsEqual("/healthz".utf8) { return .healthz }
        if path.elementsEqual("/readyz".utf8) { return .readyz }
        return .other
    }

    /// `name: value` with optional blanks around the value (RFC 9112 §5).
    private mutating func field(_ line: UnsafeRawBufferPointer) -> Step {
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > 0 else { return .failed(.badHeader) }
        let name = UnsafeRawBufferPointer(rebasing: line[0..<colon])
        // Whitespace before the colon or a leading blank (obsolete folding)
        // is refused: both have been used to smuggle requests.
        guard name.allSatisfy(HeadInProgress.isTokenByte) else { return .failed(.badHeader) }
        var start = colon + 1
        var end = line.count
        while start < end, Bytes.isBlank(line[start]) { start += 1 }
        while end > start, Bytes.isBlank(line[end - 1]) { end -= 1 }
        let value = UnsafeRawBufferPointer(rebasing: line[start..<end])
        // Field values: visible ASCII, blanks and obs-text; no other control.
        guard value.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else { return .failed(.badHeader) }
        if Bytes.equalsIgnoringCase(name, upper: "HOST") {
            hosts += 1
        } else if Bytes.equalsIgnoringCase(name, upper: "CONNECTION") {
            connectionOptions(value)
        } else if Bytes.equalsIgnoringCase(name, upper: "CONTENT-LENGTH") {
            guard !value.isEmpty, value.count <= 18, value.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                return .failed(.badContentLength)
            }
            if value.contains(where: { $0 != 0x30 }) { return .failed(.bodyNotAccepted) }
        } else if Bytes.equalsIgnoringCase(name, upper: "TRANSFER-ENCODING") {
            return .failed(.bodyNotAccepted)
        }
        return .more
    }

    /// `Connection: keep-alive, Upgrade`: a comma-separated list of
    /// case-insensitive options.
    private mutating func connectionOptions(_ value: UnsafeRawBufferPointer) {
        var start = 0
        while start <= value.count {
            let end = value[start...].firstIndex(of: UInt8(ascii: ",")) ?? value.count
            var from = start
            var to = end
            while from < to, Bytes.isBlank(value[from]) { from += 1 }
            while to > from, Bytes.isBlank(value[to - 1]) { to -= 1 }
            let option = UnsafeRawBufferPointer(rebasing: value[from..<to])
            if Bytes.equalsIgnoringCase(option, upper: "CLOSE") { close = true }
            if Bytes.equalsIgnoringCase(option, upper: "KEEP-ALIVE") { keepAlive = true }
            start = end + 1
        }
    }

    /// `tchar` of RFC 9110 §5.6.2: the bytes of methods and field names.
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
            UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
            UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            true
        default:
            false
        }
    }
}
