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
