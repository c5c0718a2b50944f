import FaultGuard
import GameABI
import UVKit

/// Runs a module's `hotswap_describe` and records what it declares: its
/// name and version, and its fields in declaration order (a field's index is
/// its position). The first malformed declaration is kept in `problem` and
/// refused with an error code, so the module learns at once and the
/// operator reads the precise reason.
final class SchemaCollector {
    private(set) var name = "unnamed"
    private(set) var version = "0"
    private(set) var fields: [FieldSpec] = []
    private(set) var problem: String?

    /// Runs `describe` under the fault guard (on the reload's worker thread:
    /// a module that traps while describing itself is refused, not fatal).
    /// Returns its status, or the name of the signal it died of.
    func collect(with describe: hotswap_describe_fn) -> (status: Int32, fault: String?) {
        var describer = game_describer(
            size: UInt32(MemoryLayout<game_describer>.size),
            abi_version: UInt32(GAME_ABI_VERSION),
            engine: UVContext.pointer(to: self),
            module: { describer, name, nameLength, version, versionLength in
                probe(name, min(nameLength, Int(GAME_MAX_MODULE_NAME)))
                probe(version, min(versionLength, Int(GAME_MAX_MODULE_NAME)))
                fg_enter_engine()
                defer { fg_leave_engine() }
                let collector = SchemaCollector.from(describer)
                guard let name = SchemaCollector.text(name, nameLength, limit: Int(GAME_MAX_MODULE_NAME)),
                    let version = SchemaCollector.text(version, versionLength, limit: Int(GAME_MAX_MODULE_NAME))
                else { return collector.refuse("module name or version is not 1...\(GAME_MAX_MODULE_NAME) bytes of UTF-8") }
                // They go into replies, STATUS, events, the audit log and
                // crash reports as single tokens: a space or a CR LF in one
                // would plant fields or lines there.
                for (what, text) in [("name", name), ("version", version)] where !SchemaCollector.isToken(text) {
                    return collector.refuse("module \(what) \(SchemaCollector.escaped(text)) is not printable ASCII "
                                            + "without spaces (it goes into replies, STATUS and logs as one token)")
                }
                collector.name = name
                collector.version = version
                return GAME_OK
            },
            field: { describer, kind, type, flags, name, nameLength, defaultInt, defaultString, defaultLength in
                probe(name, min(nameLength, Int(GAME_MAX_FIELD_NAME)))
                probe(defaultString, min(defaultLength, Int(GAME_MAX_STRING)))
                fg_enter_engine()
                defer { fg_leave_engine() }
                return SchemaCollector.from(describer).declare(
                    kind: kind, type: type, flags: flags,
                    name: SchemaCollector.text(name, nameLength, limit: Int(GAME_MAX_FIELD_NAME)),
                    defaultInt: defaultInt,
                    defaultString: SchemaCollector.bytes(defaultString, defaultLength))
            })
        var status: Int32 = GAME_OK
        var fault = fg_fault()
        let outcome = withExtendedLifetime(self) { fg_call_describe(describe, &describer, &status, &fault) }
        guard outcome == FG_OK else {
            return (GAME_ERR_STATE, outcome == FG_TIMEOUT ? "timeout" : String(cString: fg_signal_name(fault.signal)))
        }
        return (status, nil)
    }

    /// Printable ASCII, no space: `!` through `~`.
    static func isToken(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    /// `text` with every byte outside printable ASCII (and the space and
    /// backslash) written as `\xNN`, quoted: safe in a one-line reply.
    static func escaped(_ text: String) -> String {
        var out = "\""
        for byte in text.utf8 {
            if byte > 0x20 && byte < 0x7F && byte != UInt8(ascii: "\\") && byte != UInt8(ascii: "\"") {
                out.append(Character(Unicode.Scalar(byte)))
            } else {
                let hex = String(byte, radix: 16)
                out += "\\x" + (hex.count == 1 ? "0" : "") + hex
            }
        }
        return out + "\""
    }

    private func declare(
        kind: UInt32, type: UInt32, flags: UInt32, name: String?,
        defaultInt: Int64, defaultString: [UInt8]?
    ) -> Int32 {
        guard let name, name.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F })
        else { return refuse("a field name is not 1...\(GAME_MAX_FIELD_NAME) bytes of [a-z0-9_]") }
        guard let entity = EntityKind(rawValue: kind) else { return refuse("field '\(name)' has unknown kind \(kind)") }
        guard let fieldType = FieldType(rawValue: type) else { return refuse("field '\(name)' has unknown type \(type)") }
        guard flags & ~(UInt32(GAME_FIELD_UNIQUE) | UInt32(GAME_FIELD_MIGRATED)) == 0 else { return refuse("field '\(name)' has unknown flags \(flags)") }
        guard let defaultString, defaultString.count <= Int(GAME_MAX_STRING) else {
            return refuse("default of field '\(name)' is not 0...\(GAME_MAX_STRING) bytes")
        }
        // GAME_MAX_FIELDS bounds what a module can make the engine allocate per entity.
        guard fields.count < Int(GAME_MAX_FIELDS) else { return refuse("more than \(GAME_MAX_FIELDS) fields") }
        fields.append(FieldSpec(
            kind: entity, name: name, type: fieldType, unique: flags & UInt32(GAME_FIELD_UNIQUE) != 0,
            defaultInt: defaultInt, defaultString: defaultString,
            migrated: flags & UInt32(GAME_FIELD_MIGRATED) != 0))
        return Int32(fields.count - 1)
    }

    private func refuse(_ reason: String) -> Int32 {
        if problem == nil { problem = reason }
        return GAME_ERR_BAD_ARGUMENT
    }

    private static func from(_ describer: UnsafePointer<game_describer>?) -> SchemaCollector {
        UVContext.object(describer!.pointee.engine, as: SchemaCollector.self)
    }

    private static func bytes(_ pointer: UnsafePointer<UInt8>?, _ length: Int) -> [UInt8]? {
        if length == 0 { return [] }
        guard let pointer, length > 0, length <= Int(GAME_MAX_STRING) else { return nil }
        return Array(UnsafeBufferPointer(start: pointer, count: length))
    }

    private static func text(_ pointer: UnsafePointer<UInt8>?, _ length: Int, limit: Int) -> String? {
        guard length >= 1, length <= limit, let bytes = bytes(pointer, length) else { return nil }
        return String(validating: bytes, as: UTF8.self)
    }
}
