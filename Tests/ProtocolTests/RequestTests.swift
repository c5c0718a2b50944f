import Testing
@testable import Protocol

private func parse<R>(_ text: String, _ body: (Request?) -> R) -> R {
    Array(text.utf8).withUnsafeBytes { body(Request(line: $0)) }
}

private func string(_ bytes: UnsafeRawBufferPointer) -> String { String(decoding: bytes, as: UTF8.self) }

@Suite struct RequestTests {
    @Test func verbIsCaseInsensitive() {
        for spelling in ["ping", "PING", "PiNg"] {
            #expect(parse(spelling) { $0?.verbIs("PING") } == true)
        }
        #expect(parse("PINGS") { $0?.verbIs("PING") } == false)
        #expect(parse("PIN") { $0?.verbIs("PING") } == false)
    }

    @Test func blankLinesHaveNoRequest() {
        #expect(parse("") { $0 == nil })
        #expect(parse("   \t ") { $0 == nil })
    }

    @Test func argumentsAreTrimmedButKeepInnerSpacing() {
        parse("  say   hello   world \t") { request in
            #expect(request.map { string($0.verb) } == "say")
            #expect(request.map { string($0.arguments) } == "hello   world")
        }
    }

    @Test func tokensSplitOnSpacesAndTabs() {
        parse("MOVE\tn  extra") { request in
            var tokens = request!.argumentTokens
            #expect(tokens.next().map(string) == "n")
            #expect(tokens.next().map(string) == "extra")
            #expect(tokens.next() == nil)
        }
    }

    @Test func verbAlone() {
        parse("LOOK") { request in
            #expect(request?.arguments.isEmpty == true)
            var tokens = request!.argumentTokens
            #expect(tokens.next() == nil)
        }
    }
}

@Suite struct BytesTests {
    private func valid(_ bytes: [UInt8]) -> Bool { bytes.withUnsafeBytes { Bytes.isValidUTF8($0) } }

    @Test func utf8Validation() {
        #expect(valid(Array("hello, wörld ✓ 🎮".utf8)))
        #expect(!valid([0xFF]))                    // never valid
        #expect(!valid([0xC0, 0x80]))              // overlong NUL
        #expect(!valid([0xE0, 0x80, 0x80]))        // overlong
        #expect(!valid([0xED, 0xA0, 0x80]))        // UTF-16 surrogate
        #expect(!valid([0xF4, 0x90, 0x80, 0x80]))  // above U+10FFFF
        #expect(!valid([0xE2, 0x9C]))              // truncated
        #expect(!valid([0x80]))                    // lone continuation
    }

    @Test func identifiers() {
        func check(_ s: String, _ max: Int = 16) -> Bool { Array(s.utf8).withUnsafeBytes { Bytes.isIdentifier($0, maxLength: max) } }
        #expect(check("alice_01-x"))
        #expect(!check(""))
        #expect(!check("al ice"))
        #expect(!check("ålice"))
        #expect(!check(String(repeating: "a", count: 17)))
    }
}

@Suite struct LineWriterTests {
    private func write(capacity: Int, _ body: (inout LineWriter) -> Void) -> (String, Bool) {
        withUnsafeTemporaryAllocation(byteCount: capacity, alignment: 1) { buffer in
            var writer = LineWriter(buffer: buffer)
            body(&writer)
            return (String(decoding: writer.bytes, as: UTF8.self), writer.isTruncated)
        }
    }

    @Test func markersAndIntegers() {
        let (line, truncated) = write(capacity: 64) { w in
            w.append("MOVED ")
            w.append(Int64(-42))
            w.space()
            w.append(Int64.min)
            w.space()
            w.append(0)
        }
        #expect(line == "MOVED -42 -9223372036854775808 0")
        #expect(!truncated)
    }

    @Test func errorAndEventPrefixes() {
        withUnsafeTemporaryAllocation(byteCount: 64, alignment: 1) { buffer in
            let error = LineWriter.error(buffer, code: "NOT_IN_ROOM")
            #expect(String(decoding: error.bytes, as: UTF8.self) == "-ERR NOT_IN_ROOM")
        }
        withUnsafeTemporaryAllocation(byteCount: 64, alignment: 1) { buffer in
            var event = LineWriter.event(buffer)
            event.append("SAY")
            #expect(String(decoding: event.bytes, as: UTF8.self) == ">SAY")
        }
    }

    @Test func controlBytesInUserTextBecomeSpaces() {
        let (line, _) = write(capacity: 64) { w in
            Array("hi\u{1B}[31m\r\nthere\u{7F}".utf8).withUnsafeBytes { w.appendText($0) }
        }
        #expect(line == "hi [31m  there ")
    }

    @Test func textPastCapacityIsCutAndFlagged() {
        let (line, truncated) = write(capacity: 5) { w in w.append("HELLO WORLD") }
        #expect(line == "HELLO")
        #expect(truncated)
    }
}

@Suite struct LineWriterUTF8Tests {
    @Test func c1ControlsAreReplacedAndCutsKeepCharactersWhole() {
        withUnsafeTemporaryAllocation(byteCount: 6, alignment: 1) { buffer in
            var writer = LineWriter(buffer: buffer)
            // "a", U+009B (CSI), "é", "✓" (3 bytes: does not fit in the last 2)
            Array("a\u{9B}é✓".utf8).withUnsafeBytes { writer.appendText($0) }
            #expect(String(decoding: writer.bytes, as: UTF8.self) == "a é")
            #expect(writer.bytes.withMemoryRebound(to: UInt8.self) { Array($0) } == [0x61, 0x20, 0xC3, 0xA9])
            #expect(writer.isTruncated)
        }
    }
}
