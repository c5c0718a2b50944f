import GameABI

/// What a module declares in `hotswap_describe`: its name, version and
/// fields (a field's index is its position), checked as the engine checks
/// them (SchemaCollector.swift).
struct FakeSchema {
    var name = "unnamed"
    var version = "0"
    var fields: [FakeFieldSpec] = []

    /// Checks the module's ABI version and runs its `describe`; throws the
    /// engine's reason for refusing it.
    static func describe(_ module: FakeModule) throws(FakeHostError) -> FakeSchema {
        let major = module.abiVersion >> 16, minor = module.abiVersion & 0xFFFF
        guard major == UInt32(GAME_ABI_MAJOR), minor <= UInt32(GAME_ABI_MINOR) else {
            throw FakeHostError("module ABI \(major).\(minor) is not compatible with the engine's \(GAME_ABI_MAJOR).\(GAME_ABI_MINOR)")
        }
        guard let describe = module.describe else { throw FakeHostError("the module exports no hotswap_describe") }
        guard module.handle != nil else { throw FakeHostError("the module exports no hotswap_handle") }
        let collector = Collector()
        var describer = game_describer(
            size: UInt32(MemoryLayout<game_describer>.size), abi_version: UInt32(GAME_ABI_VERSION),
            engine: Unmanaged.passUnretained(collector).toOpaque(),
            module: { d, name, nameLength, version, versionLength in
                Collector.of(d).module(text(name, nameLength), text(version, versionLength))
            },
            field: { d, kind, type, flags, name, nameLength, defaultInt, defaultString, defaultLength in
                Collector.of(d).field(kind, type, flags, text(name, nameLength), defaultInt,
                                      bytes(defaultString, defaultLength))
            })
        let status = withExtendedLifetime(collector) { describe(&describer) }
        if let problem = collector.problem { throw FakeHostError("hotswap_describe: \(problem)") }
        guard status == GAME_OK else { throw FakeHostError("hotswap_describe returned \(FakeStatus.name(status))") }
        return collector.schema
    }

    /// Collects the declarations; keeps the first problem.
    private final class Collector {
        var schema = FakeSchema()
        var problem: String?

        static func of(_ d: UnsafePointer<game_describer>?) -> Collector {
            Unmanaged<Collector>.fromOpaque(d!.pointee.engine!).takeUnretainedValue()
        }

        func refuse(_ why: String) -> Int32 {
            if problem == nil { problem = why }
            return GAME_ERR_BAD_ARGUMENT
        }

        func module(_ name: [UInt8]?, _ version: [UInt8]?) -> Int32 {
            for (what, value) in [("name", name), ("version", version)] {
                guard let value, value.count >= 1, value.count <= Int(GAME_MAX_MODULE_NAME),
                    value.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
                else { return refuse("module \(what) is not 1...\(GAME_MAX_MODULE_NAME) bytes of printable ASCII without spaces") }
            }
            schema.name = String(decoding: name!, as: UTF8.self)
            schema.version = String(decoding: version!, as: UTF8.self)
            return GAME_OK
        }

        func field(_ kind: UInt32, _ type: UInt32, _ flags: UInt32, _ name: [UInt8]?, _ defaultInt: Int64,
                   _ defaultString: [UInt8]?) -> Int32
        {
            guard let name, name.count >= 1, name.count <= Int(GAME_MAX_FIELD_NAME),
                name.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F })
            else { return refuse("a field name is not 1...\(GAME_MAX_FIELD_NAME) bytes of [a-z0-9_]") }
            let text = String(decoding: name, as: UTF8.self)
            guard kind >= 1 && kind <= 4 else { return refuse("field '\(text)' has unknown kind \(kind)") }
            guard type == UInt32(GAME_TYPE_INT) || type == UInt32(GAME_TYPE_STRING) else {
                return refuse("field '\(text)' has unknown type \(type)")
            }
            guard flags & ~(UInt32(GAME_FIELD_UNIQUE) | UInt32(GAME_FIELD_MIGRATED)) == 0 else {
                return refuse("field '\(text)' has unknown flags \(flags)")
            }
            guard let defaultString, defaultString.count <= Int(GAME_MAX_STRING) else {
                return refuse("default of field '\(text)' is not 0...\(GAME_MAX_STRING) bytes")
            }
            guard schema.fields.count < Int(GAME_MAX_FIELDS) else { return refuse("more than \(GAME_MAX_FIELDS) fields") }
            schema.fields.append(FakeFieldSpec(
                kind: kind, name: text, type: type, unique: flags & UInt32(GAME_FIELD_UNIQUE) != 0,
                migrated: flags & UInt32(GAME_FIELD_MIGRATED) != 0, defaultInt: defaultInt, defaultString: defaultString))
            return Int32(schema.fields.count - 1)
        }
    }
}

/// A module's byte range copied, or nil for NULL with a length, or a length
/// past GAME_MAX_STRING... (callers bound it themselves when they need less).
func bytes(_ pointer: UnsafePointer<UInt8>?, _ length: Int, limit: Int = Int(GAME_MAX_STRING)) -> [UInt8]? {
    if length == 0 { return [] }
    guard let pointer, length > 0, length <= limit else { return nil }
    return Array(UnsafeBufferPointer(start: pointer, count: length))
}

private func text(_ pointer: UnsafePointer<UInt8>?, _ length: Int) -> [UInt8]? {
    guard length >= 1 else { return nil }
    return bytes(pointer, length, limit: Int(GAME_MAX_MODULE_NAME))
}
