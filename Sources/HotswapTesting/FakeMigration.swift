import GameABI

/// Lends a migration hook the values the outgoing module stored, by field
/// name (`old_get_int`, `old_get_string`), while the state table writes
/// the incoming module's columns (the engine's MigrationContext).
final class FakeMigration {
    unowned let host: FakeHost
    let oldStore: FakeStore
    let oldFields: [FakeFieldSpec]
    let oldBindings: [FakeBinding]

    init(host: FakeHost, oldStore: FakeStore, oldFields: [FakeFieldSpec], oldBindings: [FakeBinding]) {
        self.host = host
        self.oldStore = oldStore
        self.oldFields = oldFields
        self.oldBindings = oldBindings
    }

    /// Calls `hook` once per entity in `ids`; throws the first failure.
    func run(_ hook: FakeModule.Migrate, ids: [game_id], from: String, to: String, direction: UInt32,
             onlyWritable: (game_id) -> game_id) throws(FakeHostError)
    {
        let fromBytes = Array(from.utf8), toBytes = Array(to.utf8)
        let export = direction == UInt32(GAME_MIGRATE_UP) ? "hotswap_migrate" : "hotswap_migrate_down"
        var declined = false
        let failure: String? = fromBytes.withUnsafeBufferPointer { fromBuffer in
            toBytes.withUnsafeBufferPointer { toBuffer in
                var migration = game_migration(
                    size: UInt32(MemoryLayout<game_migration>.size), abi_version: UInt32(GAME_ABI_VERSION),
                    engine: Unmanaged.passUnretained(self).toOpaque(),
                    from_version: fromBuffer.baseAddress, from_version_length: fromBuffer.count,
                    old_get_int: { m, entity, name, length, out in FakeMigration.of(m).oldInt(entity, name, length, out) },
                    old_get_string: { m, entity, name, length, buffer, capacity, outLength in
                        FakeMigration.of(m).oldString(entity, name, length, buffer, capacity, outLength)
                    },
                    to_version: toBuffer.baseAddress, to_version_length: toBuffer.count, direction: direction,
                    old_field_type: { m, kind, name, length in FakeMigration.of(m).oldFieldType(kind, name, length) })
                for id in ids {
                    host.beginCall(.migrate, onlyWritable: onlyWritable(id))
                    let status = withExtendedLifetime(self) { hook(&migration, id, host.table) }
                    _ = host.endCall()
                    // The first call's GAME_ERR_NOT_FOUND declines (ABI 1.5).
                    if status == GAME_ERR_NOT_FOUND, direction == UInt32(GAME_MIGRATE_DOWN), id == ids.first { declined = true }
                    if status != GAME_OK { return "\(export) failed with status \(status) on \(hex(id))" }
                }
                return nil
            }
        }
        if let failure { throw FakeHostError(failure, declined: declined) }
    }

    /// `old_field_type`: the type of a field the outgoing module declares.
    func oldFieldType(_ kind: UInt32, _ name: UnsafePointer<UInt8>?, _ length: Int) -> Int32 {
        var type = GAME_ERR_NOT_FOUND
        let status = host.run("old_field_type") { () throws(FakeStatus) in
            guard let name, length <= Int(GAME_MAX_FIELD_NAME) else {
                throw FakeStatus(GAME_ERR_BAD_ARGUMENT, "a field name is at most \(GAME_MAX_FIELD_NAME) bytes")
            }
            let text = String(decoding: UnsafeBufferPointer(start: name, count: length), as: UTF8.self)
            guard let field = oldFields.first(where: { $0.kind == kind && $0.name == text }) else {
                throw FakeStatus(GAME_ERR_NOT_FOUND, "the outgoing module declares no '\(text)'")
            }
            type = Int32(field.type)
        }
        return status == GAME_OK ? type : status
    }

    static func of(_ m: UnsafePointer<game_migration>?) -> FakeMigration {
        Unmanaged<FakeMigration>.fromOpaque(m!.pointee.engine!).takeUnretainedValue()
    }

    func oldInt(_ entity: game_id, _ name: UnsafePointer<UInt8>?, _ length: Int, _ out: UnsafeMutablePointer<Int64>?) -> Int32 {
        host.run("old_get_int") { () throws(FakeStatus) in
            guard let out else { throw FakeStatus(GAME_ERR_BAD_ARGUMENT, "NULL out") }
            let (b, row) = try old(entity, name, length, UInt32(GAME_TYPE_INT))
            out.pointee = oldStore.int(b, row: row)
        }
    }

    func oldString(_ entity: game_id, _ name: UnsafePointer<UInt8>?, _ length: Int, _ buffer: UnsafeMutablePointer<UInt8>?,
                   _ capacity: Int, _ outLength: UnsafeMutablePointer<Int>?) -> Int32
    {
        host.run("old_get_string") { () throws(FakeStatus) in
            let outLength = try host.checkOut(buffer, capacity, outLength)
            let (b, row) = try old(entity, name, length, UInt32(GAME_TYPE_STRING))
            host.copyOut(oldStore.string(b, row: row), buffer, capacity, outLength)
        }
    }

    /// An old field by the entity's kind and name (declared by the
    /// outgoing module, or hidden from an earlier one), of `type`.
    private func old(_ entity: game_id, _ name: UnsafePointer<UInt8>?, _ length: Int, _ type: UInt32)
        throws(FakeStatus) -> (FakeBinding, Int)
    {
        guard let name, length > 0, length <= Int(GAME_MAX_FIELD_NAME) else {
            throw FakeStatus(GAME_ERR_BAD_ARGUMENT, "a field name is 1...\(GAME_MAX_FIELD_NAME) bytes")
        }
        let kind = kindOf(entity)
        guard kind >= 1 && kind <= 4 else { throw FakeStatus(GAME_ERR_BAD_ARGUMENT, "\(hex(entity)) is not an entity id") }
        let text = String(decoding: UnsafeBufferPointer(start: name, count: length), as: UTF8.self)
        let b: FakeBinding
        if let index = oldFields.firstIndex(where: { $0.kind == kind && $0.name == text }) {
            guard oldFields[index].type == type else { throw FakeStatus(GAME_ERR_BAD_TYPE, "old field '\(text)' has another type", isAnswer: true) }
            b = oldBindings[index]
        } else if let hidden = oldStore.binding(kind: kind, name: text, type: type) {
            b = hidden
        } else {
            // Asking whether the outgoing module had a field is how a
            // migration finds out what to convert: an answer, not a mistake.
            throw FakeStatus(GAME_ERR_BAD_FIELD, "no old field '\(text)' of that kind and type", isAnswer: true)
        }
        let row = try host.state.row(of: entity, for: b, type: type)
        guard row < oldStore.rowCount(kind) else { throw FakeStatus(GAME_ERR_NOT_FOUND, "the entity is newer than the old store") }
        return (b, row)
    }
}
