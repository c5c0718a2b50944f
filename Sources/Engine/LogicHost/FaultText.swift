import FaultGuard
import Glibc

/// What an operator reads about a contained fault beyond the record: the
/// module function that was running and the Swift runtime's own message.
///
/// Kept out of `FaultRecord` (which STATUS shows and an engine upgrade hands
/// over): these are for the log line only, made once per fault.
struct FaultText {
    /// The innermost frame inside the module's image, with its symbol
    /// demangled when the image exports one (`Game.say(_:) + 0x2c`), or the
    /// image offset (`libGameLogic.so+0x1f2c`) when it does not.
    let function: String?
    /// What the Swift runtime printed for a fatalError, precondition or force
    /// unwrap (`Fatal error: Unexpectedly found nil ...`), on one line.
    let message: String?

    /// `frames` as `fg_describe_frame` wrote them ("path+0xoff (sym+0xoff)").
    init(fault: fg_fault, frames: [String], imagePath: String) {
        let inModule = frames.filter { $0.hasPrefix(imagePath) }
        var function = inModule.first.map { FaultText.readable(frame: $0, imagePath: imagePath) }
        // A function the image does not export has no symbol: name the
        // nearest caller that has one too.
        if let first = inModule.first, !first.hasSuffix(")"),
           let named = inModule.first(where: { $0.hasSuffix(")") }) {
            function! += " in \(FaultText.readable(frame: named, imagePath: imagePath))"
        }
        self.function = function
        let raw = withUnsafeBytes(of: fault.message) { bytes in
            String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
        // The module's own text: control characters go, like any line the
        // log takes from outside.
        let trimmed = raw.drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed()
        let oneLine = AdminConsole.oneLine(String(trimmed))
        message = oneLine.isEmpty ? nil : oneLine
    }

    /// " at FUNCTION: MESSAGE" for the log line (empty parts left out).
    var suffix: String {
        var text = ""
        if let function { text += " at \(function)" }
        if let message { text += ": \(message)" }
        return text
    }

    private static func readable(frame: String, imagePath: String) -> String {
        let image = imagePath.split(separator: "/").last.map(String.init) ?? imagePath
        // "path+0xoff (symbol+0xoff)": the symbol part, demangled.
        // The last " (": the image path (a $TMPDIR) may hold parentheses.
        let characters = Array(frame)
        let space = characters.indices.dropLast().last { characters[$0] == " " && characters[$0 + 1] == "(" }
        guard let space, frame.hasSuffix(")"), case let open = frame.index(frame.startIndex, offsetBy: space + 1),
              let plus = frame[open...].lastIndex(of: "+")
        else {
            let offset = frame.dropFirst(imagePath.count)
            return image + offset
        }
        let symbol = String(frame[frame.index(after: open)..<plus])
        let offset = frame[frame.index(after: plus)..<frame.index(before: frame.endIndex)]
        return "\(demangle(symbol)) + \(offset)"
    }

    /// The Swift runtime's demangler (a public entry point of libswiftCore);
    /// C symbols come back unchanged.
    static func demangle(_ symbol: String) -> String {
        guard symbol.hasPrefix("$s") || symbol.hasPrefix("_T") else { return symbol }
        guard let text = symbol.withCString({ swiftDemangle($0, strlen($0), nil, nil, 0) }) else { return symbol }
        defer { free(text) }
        return String(cString: text)
    }
}

@_silgen_name("swift_demangle")
private func swiftDemangle(_ mangled: UnsafePointer<CChar>, _ length: Int, _ output: UnsafeMutablePointer<CChar>?,
                           _ outputSize: UnsafeMutablePointer<Int>?, _ flags: UInt32) -> UnsafeMutablePointer<CChar>?
