import GameABI

/// One field a module declares, in the form `hotswap_describe` passes on.
public struct FieldDeclaration: Sendable {
    public let kind: UInt32
    public let type: UInt32
    public let flags: UInt32
    public let name: StaticString
    public let defaultInt: Int64
    public let defaultString: StaticString

    public static func int(_ kind: Int32, _ name: StaticString, default value: Int64 = 0) -> FieldDeclaration {
        FieldDeclaration(kind: UInt32(kind), type: UInt32(GAME_TYPE_INT), flags: 0, name: name,
                         defaultInt: value, defaultString: "")
    }

    public static func string(_ kind: Int32, _ name: StaticString, default value: StaticString = "",
                              unique: Bool = false) -> FieldDeclaration {
        FieldDeclaration(kind: UInt32(kind), type: UInt32(GAME_TYPE_STRING), flags: unique ? GAME_FIELD_UNIQUE : 0,
                         name: name, defaultInt: 0, defaultString: value)
    }
}

/// Declares a module's name, version and fields to the engine. The fields'
/// indexes are their positions in `fields`; declare them in the same order
/// as the module's field constants.
public func describe(
    _ describer: UnsafePointer<game_describer>, name: StaticString, version: StaticString,
    fields: [FieldDeclaration]
) -> Int32 {
    let d = describer.pointee
    var status = d.module(describer, name.utf8Start, name.utf8CodeUnitCount, version.utf8Start, version.utf8CodeUnitCount)
    guard status == GAME_OK else { return status }
    for (expected, field) in fields.enumerated() {
        status = d.field(describer, field.kind, field.type, field.flags,
                         field.name.utf8Start, field.name.utf8CodeUnitCount,
                         field.defaultInt, field.defaultString.utf8Start, field.defaultString.utf8CodeUnitCount)
        if status < 0 { return status }
        if status != Int32(expected) { return GAME_ERR_STATE }
    }
    return GAME_OK
}
