// The wire-format checks the fuzzer runs on every input, in a target of
// their own so that the corpus replay in `make test` (ProtocolTests) runs
// exactly the same code as ProtocolFuzzer.
//
// Each part of Protocol is compared with a reference written independently
// of it (Swift's own splitting and UTF-8 decoding, not Protocol's helpers),
// so a wrong answer is found, not only a crash.
import Protocol

/// Runs every check on one fuzz input and returns what went wrong (empty
/// when all held).
///
/// Byte 0 picks the line limit (1...64) and byte 1 how the rest is split
/// into reads (1...17 bytes); the rest is the byte stream a client sends.
public func protocolCheckFailures(_ input: UnsafeRawBufferPointer) -> [String] {
    var failures: [String] = []
    guard input.count > 0 else { return failures }
    let maxLine = Int(input[0] % 64) + 1
    let step = input.count > 1 ? Int(input[1] % 17) + 1 : 1
    let body = UnsafeRawBufferPointer(rebasing: input[min(2, input.count)...])

    var framer = LineFramer(maxLineLength: maxLine)
    var lines: [[UInt8]] = []
    var outcome = LineFramer.Outcome.needMoreData
    var offset = 0
    while offset < body.count, outcome == .needMoreData {
        let chunk = UnsafeRawBufferPointer(rebasing: body[offset..<min(offset + step, body.count)])
        outcome = framer.feed(chunk) { line in
            lines.append(Array(line))
            checkRequest(line, &failures)
            return true
        }
        offset += step
    }
    let expected = referenceFrames(Array(body), maxLine: maxLine)
    if lines != expected.lines { failures.append("framer lines \(lines.map(hex)) differ from the reference \(expected.lines.map(hex))") }
    if (outcome == .lineTooLong) != expected.tooLong { failures.append("framer outcome \(outcome), reference too long: \(expected.tooLong)") }
    if framer.bufferedByteCount > maxLine + 1 { failures.append("framer buffered \(framer.bufferedByteCount) bytes past its limit \(maxLine)") }

    let valid = Bytes.isValidUTF8(body)
    if valid != (String(validating: Array(body), as: UTF8.self) != nil) {
        failures.append("UTF-8 check says \(valid) for \(hex(body)), Swift's decoder disagrees")
    }
    return failures
}

/// Splits on LF, drops one CR before it; stops at the first line over the
/// limit (or an unterminated tail that can no longer fit).
public func referenceFrames(_ bytes: [UInt8], maxLine: Int) -> (lines: [[UInt8]], tooLong: Bool) {
    var lines: [[UInt8]] = []
    var current: [UInt8] = []
    for byte in bytes {
        if byte == 0x0A {
            if current.last == 0x0D { current.removeLast() }
            if current.count > maxLine { return (lines, true) }
            lines.append(current)
            current = []
        } else {
            current.append(byte)
            if current.count > maxLine + 1 || (current.count == maxLine + 1 && byte != 0x0D) {
                return (lines, true)
            }
        }
    }
    return (lines, false)
}

/// A request line's tokens: maximal runs of bytes other than space and tab.
public func referenceTokens(_ line: [UInt8]) -> [ArraySlice<UInt8>] {
    line.split(whereSeparator: { $0 == 0x20 || $0 == 0x09 })
}

/// The arguments of a request: from the first byte of its second token to
/// the last byte of its last token (inner blanks kept).
public func referenceArguments(_ line: [UInt8]) -> [UInt8] {
    let tokens = referenceTokens(line)
    guard tokens.count > 1 else { return [] }
    return Array(line[tokens[1].startIndex..<tokens[tokens.count - 1].endIndex])
}

/// Player text as it may be relayed in `room` bytes: each character that is
/// a C0 control, DEL or a C1 control (U+0080...U+009F) becomes one space, and
/// so does each byte that does not start a well-formed character; the text
/// is cut before the first character or space that does not fit.
public func referenceText(_ bytes: [UInt8], room: Int) -> (text: [UInt8], truncated: Bool) {
    var text: [UInt8] = []
    var index = 0
    while index < bytes.count {
        var unit: [UInt8] = [0x20]
        var length = 1
        var iterator = bytes[index...].makeIterator()
        var decoder = Unicode.UTF8()
        if case .scalarValue(let scalar) = decoder.decode(&iterator) {
            length = String(scalar).utf8.count
            if !(scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)) {
                unit = Array(bytes[index..<(index + length)])
            }
        }
        if text.count + unit.count > room { return (text, true) }
        text += unit
        index += length
    }
    return (text, false)
}

/// Tokenizes a line and re-encodes its arguments, against the references.
func checkRequest(_ line: UnsafeRawBufferPointer, _ failures: inout [String]) {
    let bytes = Array(line)
    let tokens = referenceTokens(bytes)
    guard let request = Request(line: line) else {
        if !tokens.isEmpty { failures.append("\(hex(bytes)) has tokens but parsed as blank") }
        return
    }
    guard let verb = tokens.first else {
        failures.append("blank line \(hex(bytes)) parsed as a request")
        return
    }
    if Array(request.verb) != Array(verb) { failures.append("verb \(hex(request.verb)) of \(hex(bytes)), reference \(hex(verb))") }
    var parsed: [[UInt8]] = []
    var iterator = request.argumentTokens
    while let token = iterator.next() { parsed.append(Array(token)) }
    if parsed != tokens.dropFirst().map(Array.init) { failures.append("argument tokens of \(hex(bytes)) differ from the reference") }
    if Array(request.arguments) != referenceArguments(bytes) {
        failures.append("arguments \(hex(request.arguments)) of \(hex(bytes)), reference \(hex(referenceArguments(bytes)))")
    }
    // A small line that cuts the text, and one with room for all of it.
    for capacity in [32, request.arguments.count + 1] {
        withUnsafeTemporaryAllocation(byteCount: capacity, alignment: 1) { buffer in
            var writer = LineWriter.event(buffer)
            writer.appendText(request.arguments)
            let expected = referenceText(Array(request.arguments), room: capacity - 1)
            if Array(writer.bytes) != [UInt8(ascii: ">")] + expected.text {
                failures.append("writer(\(capacity)) wrote \(hex(writer.bytes)) for \(hex(request.arguments)), reference >\(hex(expected.text))")
            }
            if writer.isTruncated != expected.truncated {
                failures.append("writer(\(capacity)) truncated: \(writer.isTruncated), reference: \(expected.truncated)")
            }
        }
    }
}

public func hex<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var text: [UInt8] = []
    for byte in bytes { text += [digits[Int(byte >> 4)], digits[Int(byte & 0xF)]] }
    return String(decoding: text, as: UTF8.self)
}
