import Glibc

/// The status codes the metrics port answers with.
enum HTTPStatus: Int, CaseIterable, Sendable {
    case ok = 200
    case badRequest = 400
    case notFound = 404
    case methodNotAllowed = 405
    case requestTimeout = 408
    case serviceUnavailable = 503

    var reason: String {
        switch self {
        case .ok: "OK"
        case .badRequest: "Bad Request"
        case .notFound: "Not Found"
        case .methodNotAllowed: "Method Not Allowed"
        case .requestTimeout: "Request Timeout"
        case .serviceUnavailable: "Service Unavailable"
        }
    }

    /// Position in per-status tables.
    var index: Int { HTTPStatus.allCases.firstIndex(of: self)! }
}

/// Writes HTTP/1.1 responses: a status line, the few headers a scraper
/// needs, and a body whose length is always given (never chunked), so a
/// kept-alive connection can carry the next response.
enum HTTPResponse {
    /// What Prometheus expects of the text format (exposition 0.0.4).
    static let metricsContentType = "text/plain; version=0.0.4"
    static let textContentType = "text/plain; charset=utf-8"

    /// The head and (unless `headOnly`, for HEAD) the body of one response.
    static func bytes(_ status: HTTPStatus, contentType: String = textContentType, body: [UInt8], headOnly: Bool = false,
                      close: Bool, allow: Bool = false) -> [UInt8]
    {
        var text = "HTTP/1.1 \(status.rawValue) \(status.reason)\r\n"
        text += "Content-Type: \(contentType)\r\n"
        text += "Content-Length: \(body.count)\r\n"
        text += "Date: \(date())\r\n"
        if allow { text += "Allow: GET, HEAD\r\n" }
        if close { text += "Connection: close\r\n" }
        text += "\r\n"
        var bytes = Array(text.utf8)
        if !headOnly { bytes += body }
        return bytes
    }

    /// Now as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 9110 §5.6.7.
    static func date() -> String {
        var now = time(nil)
        var parts = tm()
        gmtime_r(&now, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
