import GameABI

/// RELOAD and ROLLBACK, as the engine's swap transaction: all or nothing.
extension FakeHost {
    /// Swaps `candidate` in: describes it, binds its fields by name and
    /// type (new fields get their defaults, dropped ones stay hidden for a
    /// rollback, a retyped one needs GAME_FIELD_MIGRATED and a `migrate`
    /// export), calls `migrate` once per live entity with direction
    /// GAME_MIGRATE_UP (for a module with player fields, every stored player
    /// first, each allowed to write only itself, as the engine's staged
    /// migration does when no player field is unique; then the global
    /// entity, every session and room), then `load`. Throws, changing nothing, when a step
    /// fails; output and room changes in those hooks get GAME_ERR_STATE.
    public func reload(to candidate: FakeModule) throws {
        let incoming = try FakeSchema.describe(candidate)
        try swap(to: candidate, schema: incoming, rollingBack: false)
    }

    /// Swaps back to the module that served before the last swap (ABI 1.5):
    /// with the newer module's `migrateDown`, runs it like a migration in
    /// reverse (GAME_MIGRATE_DOWN, reading the newer values, writing the
    /// previous schema; the global entity, sessions, rooms, then stored
    /// players if the previous module has player fields); without it, refuses when the newer module retyped
    /// a field or computed (GAME_FIELD_MIGRATED) one the previous module
    /// declares, naming the field; otherwise fields the newer module
    /// dropped come back with their kept values. Then the previous `load`.
    public func rollback() throws {
        guard let previous else { throw FakeHostError("no previous module to roll back to") }
        do {
            try swap(to: previous.module, schema: previous.schema, rollingBack: true)
        } catch let error where error.declined {
            // GAME_ERR_NOT_FOUND from migrateDown: it has no way back there
            // (ABI 1.5); as the engine, go on as without the hook.
            try swap(to: previous.module, schema: previous.schema, rollingBack: true, useDown: false)
        }
    }

    private func swap(to candidate: FakeModule, schema incoming: FakeSchema, rollingBack: Bool, useDown: Bool = true)
        throws(FakeHostError)
    {
        precondition(call == nil, "reload or rollback from inside a module call")
        if state.timers.timerCount > 0, candidate.timer == nil {
            throw FakeHostError("the module exports no hotswap_timer, and \(state.timers.timerCount) pending timers would have no handler")
        }
        if state.timers.tickingRooms > 0, candidate.tick == nil {
            throw FakeHostError("the module exports no hotswap_tick, and \(state.timers.tickingRooms) ticking rooms would have no handler")
        }
        if authMode != .open, candidate.auth == nil {
            throw FakeHostError("the module exports no hotswap_auth, and the auth mode makes every login go through the engine's check")
        }
        let hook: FakeModule.Migrate?
        if rollingBack {
            hook = useDown ? module.migrateDown : nil
            if hook == nil, let mixed = Self.mixedField(serving: schema, previous: incoming, declined: module.migrateDown != nil) {
                throw FakeHostError(mixed)
            }
        } else {
            if candidate.migrate == nil, let field = incoming.fields.first(where: \.migrated) {
                throw FakeHostError("field '\(field.name)' is marked as migrated but the module exports no hotswap_migrate")
            }
            hook = candidate.migrate
        }
        let saved = (state: state, bindings: bindings, module: module, schema: schema)
        do throws(FakeHostError) {
            let incomingBindings = try state.store.bind(incoming.fields, live: fields, rollback: rollingBack)
            // The hooks write the incoming schema (field_index sees it too).
            bindings = incomingBindings
            module = candidate
            schema = incoming
            if let hook {
                let migration = FakeMigration(host: self, oldStore: saved.state.store, oldFields: saved.schema.fields,
                                              oldBindings: saved.bindings)
                let players = incoming.fields.contains { $0.kind == UInt32(GAME_KIND_PLAYER) } ? state.players.ids : []
                let others = [GAME_GLOBAL_ID] + state.sessions.ids + state.rooms.ids
                // A reload migrates stored players first, between messages,
                // each allowed to write only itself (the engine's staged
                // migration: a module with player fields, no unique player
                // field); otherwise, and on a rollback, all in the commit.
                let staged = !rollingBack && !players.isEmpty
                    && !state.store.tables[Int(GAME_KIND_PLAYER)].columns.contains { $0.index != nil }
                let ids = staged ? players + others : others + players
                let playerIDs = Set(staged ? players : [])
                try migration.run(hook, ids: ids, from: saved.schema.version, to: incoming.version,
                                  direction: UInt32(rollingBack ? GAME_MIGRATE_DOWN : GAME_MIGRATE_UP),
                                  onlyWritable: { playerIDs.contains($0) ? $0 : 0 })
            }
            if let load = candidate.load {
                beginCall(.load)
                let status = Array(saved.schema.version.utf8).withUnsafeBufferPointer { load(table, $0.baseAddress, $0.count) }
                _ = endCall()
                if status != GAME_OK { throw FakeHostError("hotswap_load failed with status \(status)") }
            }
        } catch {
            state = saved.state
            bindings = saved.bindings
            module = saved.module
            schema = saved.schema
            throw error
        }
        previous = (saved.module, saved.schema)
    }

    /// The engine's RollbackCheck: the first field `previous` declares (in
    /// its order) that `serving` retyped, or computes (GAME_FIELD_MIGRATED)
    /// under the same name and type; going back past it without
    /// `migrateDown` would mix two points in time. Nil when nothing mixes.
    static func mixedField(serving: FakeSchema, previous: FakeSchema, declined: Bool = false) -> String? {
        let from = "\(serving.name) \(serving.version)", to = "\(previous.name) \(previous.version)"
        let noHook = declined ? "its hotswap_migrate_down has no way back to \(to)" : "exports no hotswap_migrate_down"
        for field in previous.fields {
            guard let newer = serving.fields.first(where: { $0.kind == field.kind && $0.name == field.name }) else { continue }
            if newer.type != field.type {
                return "cannot roll back \(from) -> \(to): \(from) retyped field '\(field.name)' and \(noHook); "
                    + "going back would mix the \(field.name) from before the upgrade with everything written since"
            }
            if newer.migrated {
                return "cannot roll back \(from) -> \(to): \(from) computes field '\(field.name)' in its hotswap_migrate "
                    + "(GAME_FIELD_MIGRATED) and \(noHook); going back would hand \(to) the "
                    + "\(field.name) in \(from)'s terms"
            }
        }
        return nil
    }
}
