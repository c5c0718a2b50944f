/// Which build of this library a piece of code is running.
///
/// The engine and every logic module each link their own copy of
/// `Protocol`. A reload must run the module's copy, never the engine's
/// (symbol interposition would silently do the latter if the executable
/// exported these symbols). The test suite builds a module with
/// `-D HOTSWAP_PROTOCOL_VARIANT` and checks that, after the swap, this
/// function answers "variant" inside it while the engine's copy answers
/// "base".
@inline(never)
public func protocolBuildTag() -> StaticString {
    #if HOTSWAP_PROTOCOL_VARIANT
    return "variant"
    #else
    return "base"
    #endif
}
