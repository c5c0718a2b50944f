import CLibUV

/// A failed libuv call: the one error type for every libuv status code, so
/// that callers never format `uv_err_name` and `uv_strerror` themselves.
public struct UVError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The negative libuv status (`UV_EAGAIN`, `UV_EADDRINUSE`, ...).
    public let code: Int32

    public init(_ code: Int32) { self.code = code }

    /// Throws when `status` is a libuv error (negative); returns it otherwise.
    @discardableResult
    public static func check(_ status: Int32) throws(UVError) -> Int32 {
        if status < 0 { throw UVError(status) }
        return status
    }

    public static let again = UVError(UV_EAGAIN.rawValue)
    public static let endOfFile = UVError(Int32(UV_EOF.rawValue))

    /// `EADDRINUSE (address already in use)`.
    public var description: String {
        "\(String(cString: uv_err_name(code))) (\(String(cString: uv_strerror(code))))"
    }
}

/// Checks a libuv init or start call that fails only on a programming error
/// (a handle used before its init, or after its close) or in a process out
/// of resources it cannot serve without: the engine does not go on
/// pretending. It stops with the call named and libuv's reason, which the
/// fault guard's crash report carries (never a silent failure, never a
/// handle that quietly never fires). Calls that fail for ordinary reasons
/// (binding a port, reading a socket) are checked where they are made and
/// answered there.
@inlinable
public func uvMust(_ status: Int32, _ call: StaticString, file: StaticString = #fileID, line: UInt = #line) {
    if status != 0 { uvCallFailed(status, call, file: file, line: line) }
}

@usableFromInline
func uvCallFailed(_ status: Int32, _ call: StaticString, file: StaticString, line: UInt) -> Never {
    fatalError("\(call) failed: \(UVError(status))", file: file, line: line)
}
