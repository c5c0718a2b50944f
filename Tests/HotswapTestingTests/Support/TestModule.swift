import GameABI
import HotswapTesting

/// A field a test module declares.
struct Field: Sendable {
    var kind: Int32
    var type: Int32
    var name: String
    var flags: UInt32 = 0
    var defaultInt: Int64 = 0
    var defaultString: String = ""

    static func int(_ kind: Int32, _ name: String, _ defaultInt: Int64 = 0, flags: UInt32 = 0) -> Field {
        Field(kind: kind, type: GAME_TYPE_INT, name: name, flags: flags, defaultInt: defaultInt)
    }

    static func string(_ kind: Int32, _ name: String, _ defaultString: String = "", flags: UInt32 = 0) -> Field {
        Field(kind: kind, type: GAME_TYPE_STRING, name: name, flags: flags, defaultString: defaultString)
    }
}

/// One request as a test module's handler sees it.
struct Request {
    let session: game_id
    let line: String
    let t: Table

    var words: [String] { line.split(separator: " ").map(String.init) }
    var verb: String { words.first ?? "" }
    func word(_ index: Int) -> String { index < words.count ? words[index] : "" }
    /// The words from `index` on, joined by spaces.
    func rest(_ index: Int) -> String { words.dropFirst(index).joined(separator: " ") }
}

/// A `describe` declaring `name`, `version` and `fields`, in order.
func describer(_ name: String, _ version: String, _ fields: [Field]) -> FakeModule.Describe {
    { d in
        var status = withBytes(name) { n, nl in withBytes(version) { v, vl in d.pointee.module!(d, n, nl, v, vl) } }
        guard status == GAME_OK else { return status }
        for (index, field) in fields.enumerated() {
            status = withBytes(field.name) { n, nl in
                withBytes(field.defaultString) { s, sl in
                    d.pointee.field!(d, UInt32(field.kind), UInt32(field.type), field.flags, n, nl, field.defaultInt, s, sl)
                }
            }
            guard status == Int32(index) else { return status < 0 ? status : GAME_ERR_STATE }
        }
        return GAME_OK
    }
}

/// A test module: `fields` declared in order, requests handed to `handle`
/// as a `Request`; other exports set on the result as needed.
func testModule(_ name: String = "test", version: String = "1", fields: [Field],
                handle: @escaping @Sendable (Request) -> Int32) -> FakeModule
{
    FakeModule(describe: describer(name, version, fields), handle: { m, t in
        let line = String(decoding: UnsafeBufferPointer(start: m.pointee.line, count: m.pointee.length), as: UTF8.self)
        return handle(Request(session: m.pointee.session, line: line, t: t))
    })
}

/// The bytes a hook was handed, as text.
func text(_ pointer: UnsafePointer<UInt8>?, _ length: Int) -> String {
    guard let pointer, length > 0 else { return "" }
    return String(decoding: UnsafeBufferPointer(start: pointer, count: length), as: UTF8.self)
}
