import Testing
@testable import HotswapEngine

/// What a parser made of a stream: the requests in order, and how the last
/// feed ended.
private struct Parsed: Equatable {
    var requests: [HTTPRequestHead] = []
    var outcome = HTTPRequestParser.Outcome.needMoreData
    var inRequest = false
}

/// Feeds `chunks` in order (stopping at the first outcome that is not
/// `.needMoreData`, as a connection would).
private func parse(_ chunks: [[UInt8]], maxHeadBytes: Int = 1024, maxHeaders: Int = 16,
                   stopAfter: Int? = nil) -> Parsed
{
    var parser = HTTPRequestParser(maxHeadBytes: maxHeadBytes, maxHeaderCount: maxHeaders)
    var parsed = Parsed()
    for chunk in chunks {
        parsed.outcome = chunk.withUnsafeBytes { bytes in
            parser.feed(bytes) { request in
                parsed.requests.append(request)
                return stopAfter.map { parsed.requests.count < $0 } ?? true
            }
        }
        if parsed.outcome != .needMoreData { break }
    }
    parsed.inRequest = parser.inRequest
    return parsed
}

private func parse(_ text: String, maxHeadBytes: Int = 1024, maxHeaders: Int = 16) -> Parsed {
    parse([Array(text.utf8)], maxHeadBytes: maxHeadBytes, maxHeaders: maxHeaders)
}

/// `chunks` cut at random places (a seeded generator, so a failure repeats).
private func split(_ bytes: [UInt8], using generator: inout SplitMix) -> [[UInt8]] {
    var chunks: [[UInt8]] = []
    var start = 0
    while start < bytes.count {
        let length = Int(generator.next() % 23) + 1
        let end = min(bytes.count, start + length)
        chunks.append(Array(bytes[start..<end]))
        start = end
    }
    return chunks
}

/// A small deterministic generator (SplitMix64).
private func head(_ method: HTTPRequestHead.Method, _ target: HTTPRequestHead.Target, minor: Int = 1,
                  keepAlive: Bool = true) -> HTTPRequestHead
{
    HTTPRequestHead(method: method, target: target, minorVersion: minor, keepAlive: keepAlive)
}

@Suite struct HTTPRequestParserTests {
    @Test func aPrometheusScrape() {
        let parsed = parse("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9100\r\nUser-Agent: Prometheus/2.42.0\r\n"
            + "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n"
            + "Accept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n")
        #expect(parsed == Parsed(requests: [head(.get, .metrics)]))
    }

    @Test func targetsMethodsAndQueries() {
        #expect(parse("GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n").requests == [head(.get, .healthz)])
        #expect(parse("HEAD /readyz HTTP/1.1\r\nHost: h\r\n\r\n").requests == [head(.head, .readyz)])
        #expect(parse("GET /metrics?name[]=up HTTP/1.1\r\nHost: h\r\n\r\n").requests == [head(.get, .metrics)])
        #expect(parse("GET /metrics/ HTTP/1.1\r\nHost: h\r\n\r\n").requests == [head(.get, .other)])
        #expect(parse("GET http://h/metrics HTTP/1.1\r\nHost: h\r\n\r\n").requests == [head(.get, .other)])
        #expect(parse("POST /metrics HTTP/1.1\r\nHost: h\r\n\r\n").requests == [head(.other, .metrics)])
        // Methods are case-sensitive.
        #expect(parse("get /metrics HTTP/1.1\r\nHost: h\r\n\r\n").requests == [head(.other, .metrics)])
    }

    @Test func keepAliveFollowsTheVersionAndConnectionHeader() {
        #expect(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").requests
            == [head(.get, .other, keepAlive: false)])
        #expect(parse("GET / HTTP/1.1\r\nHost: h\r\nconnection: Keep-Alive, CLOSE\r\n\r\n").requests
            == [head(.get, .other, keepAlive: false)])
        #expect(parse("GET / HTTP/1.0\r\n\r\n").requests == [head(.get, .other, minor: 0, keepAlive: false)])
        #expect(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").requests
            == [head(.get, .other, minor: 0, keepAlive: true)])
        #expect(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade , keep-alive\r\n\r\n").requests
            == [head(.get, .other)])
    }

    @Test func bareLineFeedsAndLeadingEmptyLinesAreAccepted() {
        #expect(parse("\r\n\nGET /healthz HTTP/1.1\nHost: h\n\n").requests == [head(.get, .healthz)])
    }

    @Test func pipelinedRequestsComeOutInOrder() {
        let parsed = parse("GET /healthz HTTP/1.1\r\nHost: h\r\n\r\nHEAD /metrics HTTP/1.1\r\nHost: h\r\n\r\n"
            + "GET /readyz HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /half")
        #expect(parsed.requests == [head(.get, .healthz), head(.head, .metrics), head(.get, .readyz, keepAlive: false)])
        #expect(parsed.outcome == .needMoreData)
        #expect(parsed.inRequest)
    }

    @Test func stoppingDropsTheRestOfTheChunk() {
        let text = "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\nGET /readyz HTTP/1.1\r\nHost: h\r\n\r\n"
        let parsed = parse([Array(text.utf8)], stopAfter: 1)
        #expect(parsed.requests == [head(.get, .healthz)])
        #expect(parsed.outcome == .stopped)
    }

    @Test func inRequestTellsAnUnfinishedHead() {
        #expect(!parse("").inRequest)
        #expect(parse("G").inRequest)
        #expect(parse("GET / HTTP/1.1\r\n").inRequest)
        #expect(parse("\r\n").inRequest)
        #expect(!parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n").inRequest)
    }

    @Test func malformedRequestLines() {
        for line in ["GET /metrics", "GET  /metrics HTTP/1.1", "GET /metrics  HTTP/1.1", "GET /metrics HTTP/1.1 x",
                     "GET /metrics HTTP/2.0", "GET /metrics HTTP/1.10", "GET /metrics http/1.1", " GET / HTTP/1.1",
                     "G(T / HTTP/1.1", "GET /a\u{7F}b HTTP/1.1", "GET /\u{1}b HTTP/1.1", "GARBAGE", "\u{16}\u{3}\u{1}"]
        {
            let parsed = parse(line + "\r\nHost: h\r\n\r\n")
            #expect(parsed.requests.isEmpty, "\(line)")
            #expect(parsed.outcome == .invalid(.badRequestLine), "\(line)")
        }
    }

    @Test func malformedHeaders() {
        for field in ["NoColon", ": empty name", "Bad Name: x", "Host : h", " folded", "\tfolded", "X: a\u{1}b",
                      "X: a\u{7F}", "X\u{80}: y"]
        {
            let parsed = parse("GET / HTTP/1.1\r\nHost: h\r\n\(field)\r\n\r\n")
            #expect(parsed.outcome == .invalid(.badHeader), "\(field)")
        }
        // obs-text (bytes 0x80 and up) is allowed in values.
        #expect(parse("GET / HTTP/1.1\r\nHost: h\r\nX: caf\u{E9}\r\n\r\n").requests.count == 1)
    }

    @Test func hostIsRequiredOnceInHTTP11() {
        #expect(parse("GET / HTTP/1.1\r\n\r\n").outcome == .invalid(.badHost))
        #expect(parse("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n").outcome == .invalid(.badHost))
        #expect(parse("GET / HTTP/1.0\r\n\r\n").requests.count == 1)
    }

    @Test func bodiesAreRefused() {
        #expect(parse("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n").requests.count == 1)
        #expect(parse("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 00\r\n\r\n").requests.count == 1)
        #expect(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello").outcome == .invalid(.bodyNotAccepted))
        #expect(parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n").outcome == .invalid(.bodyNotAccepted))
        for value in ["", "-1", "1 2", "0x10", "+0", "99999999999999999999"] {
            #expect(parse("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: \(value)\r\n\r\n").outcome == .invalid(.badContentLength),
                    "\(value)")
        }
    }

    @Test func headsAreBounded() {
        // Exactly at the limit (each line counted with CRLF) passes; one byte more does not.
        let request = "GET / HTTP/1.1\r\nHost: h\r\nX: "
        let fill = 200 - request.utf8.count - 4  // the value's CRLF and the empty line
        let atLimit = request + String(repeating: "a", count: fill) + "\r\n\r\n"
        #expect(atLimit.utf8.count == 200)
        #expect(parse(atLimit, maxHeadBytes: 200).requests.count == 1)
        let overLimit = request + String(repeating: "a", count: fill + 1) + "\r\n\r\n"
        #expect(parse(overLimit, maxHeadBytes: 200).outcome == .invalid(.headTooLarge))
        // A head that never ends is refused once it is over, without waiting for a line end.
        let endless = parse(Array(repeating: Array("X-Filler: aaaaaaaaaaaaaaaaaaaa".utf8), count: 20), maxHeadBytes: 200)
        #expect(endless.outcome == .invalid(.headTooLarge))
        // ...counting the lines already taken: the unfinished one alone is under the limit.
        let unfinished = parse("GET / HTTP/1.1\r\nHost: h\r\nX: " + String(repeating: "b", count: 180), maxHeadBytes: 200)
        #expect(unfinished.outcome == .invalid(.headTooLarge))
        let endlessBlankLines = parse(String(repeating: "\r\n", count: 101), maxHeadBytes: 200)
        #expect(endlessBlankLines.outcome == .invalid(.headTooLarge))
        var fields = "GET / HTTP/1.1\r\nHost: h\r\n"
        for index in 0..<16 { fields += "X-\(index): y\r\n" }
        #expect(parse(fields + "\r\n").outcome == .invalid(.tooManyHeaders))
    }

    @Test func theLimitIsPerRequestNotPerConnection() {
        let one = "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n"
        let parsed = parse(String(repeating: one, count: 50), maxHeadBytes: 64)
        #expect(parsed.requests.count == 50)
        #expect(parsed.outcome == .needMoreData)
    }

    @Test func anErrorIsFinal() {
        var parser = HTTPRequestParser(maxHeadBytes: 256)
        let bad = Array("BAD\r\n".utf8)
        let good = Array("GET / HTTP/1.1\r\nHost: h\r\n\r\n".utf8)
        var delivered = 0
        #expect(bad.withUnsafeBytes { parser.feed($0) { _ in delivered += 1; return true } } == .invalid(.badRequestLine))
        #expect(good.withUnsafeBytes { parser.feed($0) { _ in delivered += 1; return true } } == .invalid(.badRequestLine))
        #expect(delivered == 0)
    }

    /// Fuzz-style: valid and invalid streams, cut at random places, parse
    /// exactly as they do in one piece (requests, outcome, and whether a
    /// request is pending), and nothing traps.
    @Test func randomSplitsParseAsTheWholeDoes() {
        let pieces = [
            "GET /metrics HTTP/1.1\r\nHost: localhost:9100\r\nAccept: */*\r\n\r\n",
            "HEAD /healthz HTTP/1.1\r\nhost: x\r\nConnection: keep-alive\r\n\r\n",
            "GET /readyz HTTP/1.0\r\n\r\n",
            "GET /nope?x=1 HTTP/1.1\nHost: h\n\n",
            "\r\nGET /metrics HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
            "DELETE /metrics HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET /metrics HTTP/1.1\r\nHost: h\r\nX-Long: \(String(repeating: "z", count: 150))\r\n\r\n",
        ]
        let poison = ["GET /metrics HTTP/9.9\r\n\r\n", "GET / HTTP/1.1\r\nHost: h\r\nBad : x\r\n\r\n",
                      "GET / HTTP/1.1\r\n\(String(repeating: "Y: 1\r\n", count: 40))\r\n"]
        var generator = SplitMix(state: 12345)
        for round in 0..<400 {
            var text = ""
            for _ in 0..<Int(generator.next() % 6) + 1 { text += pieces[Int(generator.next() % UInt64(pieces.count))] }
            if round % 4 == 0 { text += poison[Int(generator.next() % UInt64(poison.count))] + pieces[0] }
            if round % 5 == 0 { text += "GET /metr" }  // an unfinished tail
            let bytes = Array(text.utf8)
            let whole = parse([bytes], maxHeadBytes: 200)
            let pieces = parse(split(bytes, using: &generator), maxHeadBytes: 200)
            #expect(pieces == whole, "round \(round): \(text.debugDescription)")
            if round % 4 != 0 { #expect(whole.outcome == .needMoreData, "round \(round)") }
        }
        // Random bytes: whatever they are, split or whole, the same verdict.
        for round in 0..<300 {
            let alphabet = Array("GET /metrics HTTP/1.1\r\nHost: :\t\u{0}\u{7F}x".utf8)
            let bytes = (0..<Int(generator.next() % 300)).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] }
            #expect(parse(split(bytes, using: &generator), maxHeadBytes: 200) == parse([bytes], maxHeadBytes: 200),
                    "random round \(round)")
        }
    }
}
