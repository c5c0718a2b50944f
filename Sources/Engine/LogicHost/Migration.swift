import CLibUV
import FaultGuard
import GameABI
import UVKit

/// Which way a migration goes (`game_migration.direction`, ABI 1.5): up
/// on a RELOAD (the candidate's `hotswap_migrate`), down on a ROLLBACK (the
/// serving module's `hotswap_migrate_down`, writing the previous module's
/// schema).
enum MigrationDirection: Sendable {
    case up, down

    var code: UInt32 { self == .up ? UInt32(GAME_MIGRATE_UP) : UInt32(GAME_MIGRATE_DOWN) }
    /// The export that runs, as faults and refusals name it.
    var export: String { self == .up ? "hotswap_migrate" : "hotswap_migrate_down" }
}

/// Lends `hotswap_migrate` the outgoing module's values by field name,
/// while the state table writes the new columns. A rollback's
/// `hotswap_migrate_down` reads the same way: the outgoing module is then
/// the newer one, and the table writes the previous module's columns.
final class MigrationContext {
    let world: World
    /// The store as it was before the new schema was bound.
    let oldStore: StateStore
    let oldFields: [FieldSpec]
    let oldBindings: [FieldBinding]

    init(world: World, oldStore: StateStore, oldFields: [FieldSpec], oldBindings: [FieldBinding]) {
        self.world = world
        self.oldStore = oldStore
        self.oldFields = oldFields
        self.oldBindings = oldBindings
    }

    /// The entities a reload migrates in its commit: the global entity,
    /// every session, every room, then `players` (every stored player,
    /// online or not, or those a staged migration must do again).
    func entities(players: [GameID]) -> [GameID] {
        var ids: [GameID] = [GameID.global]
        ids += world.sessionIDs()
        world.forEachRoom { ids.append($0) }
        ids += players
        return ids
    }

    /// Calls `hook` for `ids` in order, until all are done or, with a
    /// `deadline` (`uv_hrtime` nanoseconds), until it passes (checked every
    /// 16 entities); returns how many were migrated. `hook` is the module's
    /// `hotswap_migrate` from `version` to `target` (a reload), or the
    /// newer module's `hotswap_migrate_down` back to `target` (a rollback):
    /// the same signature, told apart by `direction` (ABI 1.5).
    /// `willMigrate` hears of each entity before its call.
    func run(_ hook: hotswap_migrate_fn, table: UnsafePointer<game_state_table>, from version: String,
             to target: String, direction: MigrationDirection = .up,
             ids: [GameID], deadline: UInt64 = 0, willMigrate: (GameID) -> Void = { _ in },
             fault: UnsafeMutablePointer<fg_fault>) throws(SwapError) -> Int
    {
        // Both versions in one buffer that outlives every call:
        // `from_version` points at its start, `to_version` after it.
        let fromLength = version.utf8.count
        var versionBytes = Array(version.utf8) + Array(target.utf8)
        return try versionBytes.withUnsafeMutableBufferPointer { versions throws(SwapError) -> Int in
            var migration = game_migration(
                size: UInt32(MemoryLayout<game_migration>.size),
                abi_version: UInt32(GAME_ABI_VERSION),
                engine: UVContext.pointer(to: self),
                from_version: versions.baseAddress, from_version_length: fromLength,
                old_get_int: { m, entity, name, length, out in
                    guard let out else { return GAME_ERR_BAD_ARGUMENT }
                    return StateTable.status(touching: { probe(name, min(length, Int(GAME_MAX_FIELD_NAME))); probe(out) }) { () throws(EngineError) in
                        let (binding, row) = try MigrationContext.from(m).old(entity, name, length, .int)
                        out.pointee = MigrationContext.from(m).oldStore.int(binding, row: row)
                    }
                },
                old_get_string: { m, entity, name, length, buffer, capacity, outLength in
                    guard let outLength, capacity >= 0, buffer != nil || capacity == 0 else { return GAME_ERR_BAD_ARGUMENT }
                    return StateTable.status(touching: {
                        probe(name, min(length, Int(GAME_MAX_FIELD_NAME)))
                        probe(buffer, min(capacity, Int(GAME_MAX_STRING)))
                        probe(outLength)
                    }) { () throws(EngineError) in
                        let context = MigrationContext.from(m)
                        let (binding, row) = try context.old(entity, name, length, .string)
                        context.oldStore.withString(binding, row: row) { StateTable.copyOut($0, buffer, capacity, outLength) }
                    }
                },
                to_version: versions.baseAddress.map { $0 + fromLength }, to_version_length: versions.count - fromLength,
                direction: direction.code,
                old_field_type: { m, kind, name, length in
                    var type = GAME_ERR_NOT_FOUND
                    let status = StateTable.status(touching: { probe(name, min(length, Int(GAME_MAX_FIELD_NAME))) }) {
                        () throws(EngineError) in
                        guard let name, length <= Int(GAME_MAX_FIELD_NAME), let kind = EntityKind(rawValue: kind) else {
                            throw .badArgument
                        }
                        let bytes = UnsafeRawBufferPointer(start: name, count: length)
                        guard let field = MigrationContext.from(m).oldFields.first(where: {
                            $0.kind == kind && $0.name.utf8.elementsEqual(bytes)
                        }) else { throw .notFound }
                        type = Int32(field.type.rawValue)
                    }
                    return status == GAME_OK ? type : status
                })
            var next = 0
            while next < ids.count {
                let id = ids[next]
                willMigrate(id)
                var status: Int32 = GAME_OK
                // hotswap_migrate_down has hotswap_migrate's signature: the
                // same trampoline guards it.
                let outcome = withExtendedLifetime(self) { fg_call_migrate(hook, &migration, id.raw, table, &status, fault) }
                if outcome != FG_OK { throw .migrateFaulted(outcome: outcome, entity: id, export: direction.export) }
                // A down hook's first answer GAME_ERR_NOT_FOUND declines: it
                // has no way back to that version (game_abi.h, "Going back").
                if direction == .down, next == 0, status == GAME_ERR_NOT_FOUND { throw .downDeclined }
                if status != GAME_OK { throw .migrateFailed(entity: id, status: status, export: direction.export) }
                next += 1
                if deadline != 0 && next & 15 == 0 && uv_hrtime() >= deadline { break }
            }
            return next
        }
    }

    private static func from(_ m: UnsafePointer<game_migration>?) -> MigrationContext {
        UVContext.object(m!.pointee.engine, as: MigrationContext.self)
    }

    /// Finds an old field by kind and name, checks its type and the entity.
    private func old(_ entity: UInt64, _ name: UnsafePointer<UInt8>?, _ length: Int, _ type: FieldType)
        throws(EngineError) -> (FieldBinding, Int)
    {
        guard let name, length > 0, length <= Int(GAME_MAX_FIELD_NAME) else { throw .badArgument }
        let id = GameID(raw: entity)
        guard let kind = id.kind else { throw .badArgument }
        let bytes = UnsafeRawBufferPointer(start: name, count: length)
        let binding: FieldBinding
        if let index = oldFields.indices.first(where: {
            oldFields[$0].kind == kind && oldFields[$0].name.utf8.elementsEqual(bytes)
        }) {
            guard oldFields[index].type == type else { throw .badType }
            binding = oldBindings[index]
        } else if !bytes.contains(UInt8(ascii: ".")), let hidden = oldStore.binding(kind: kind, name: bytes, type: type) {
            // (A name with a dot is the engine's own column, a player's
            // secret hash: no module reads it, World.secretField.)
            // Not declared by the outgoing module but kept from an earlier one.
            binding = hidden
        } else {
            throw .badField
        }
        // Sessions, rooms and players are the same during a commit: rows
        // match. A staged slice reads a store taken before it began, which
        // has no row for an entity created since.
        let row = try world.row(of: id, for: binding, type: type)
        guard row < oldStore.rowCount(kind) else { throw .notFound }
        return (binding, row)
    }
}
