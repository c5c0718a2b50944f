import GameABI

/// RELOAD and ROLLBACK, as the engine's swap transaction: all or nothing.
extension FakeHost {
    /// Swaps `candidate` in: describes it, binds its fields by name and
    /// type (new fields get their defaults, dropped ones stay hidden for a
    /// rollback, a retyped one needs GAME_FIELD_MIGRATED and a `migrate`
    /// export), calls `migrate` once per live entity (stored players first,
    /// for a module with player fields, each allowed to write only itself;
    /// then the global entity, every session and room) with direction
    /// GAME_MIGRATE_UP, then `load`. Throws, changing nothing, when a step
    /// fails; output and room changes in those hooks get GAME_ERR_STATE.
    public func reload(to candidate: FakeModule) throws {
        let incoming = try FakeSchema.describe(candidate)
        try swap(to: candidate, schema: incoming, rollingBack: false)
    }

    /// Swaps back to the module that served before the last swap (ABI 1.5):
    /// with the newer module's `migrateDown`, runs it like a migration in
    /// reverse (GAME_MIGRATE_DOWN, reading the newer values, writing the
    /// previous schema); without it, refuses when the newer module retyped
    /// a field or computed (GAME_FIELD_MIGRATED) one the previous module
    /// declares, naming the field; otherwise fields the newer module
    /// dropped come back with their kept values. Then the previous `load`.
    public func rollback() throws {
        guard let previous else { throw FakeHostError("no previous module to roll back to") }
        try swap(to: previous.module, schema: previous.schema, rollingBack: true)
    }

    private func swap(to candidate: FakeModule, schema incoming: FakeSchema, rollingBack: Bool) throws(FakeHostError) {
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
            hook = module.migrateDown
            if hook == nil, let field = Self.fieldMixingTimes(newer: fields, older: incoming.fields) {
                throw FakeHostError("rollback refused: \(moduleName) \(moduleVersion) retyped or migrated field '\(field)' and exports no hotswap_migrate_down")
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
            bindings = incomingBindings
            module = candidate
            if let hook {
                let migration = FakeMigration(host: self, oldStore: saved.state.store, oldFields: saved.schema.fields,
                                              oldBindings: saved.bindings)
                // Players first (their migration reads other entities' old
                // values through old_get_*), each writing only itself.
                var ids: [game_id] = []
                if incoming.fields.contains(where: { $0.kind == UInt32(GAME_KIND_PLAYER) }) { ids += state.players.ids }
                let players = ids.count
                ids += [GAME_GLOBAL_ID] + state.sessions.ids + state.rooms.ids
                let playerIDs = Set(ids.prefix(players))
                try migration.run(hook, ids: ids, from: saved.schema.version, to: incoming.version,
                                  direction: UInt32(rollingBack ? GAME_MIGRATE_DOWN : GAME_MIGRATE_UP),
                                  onlyWritable: { playerIDs.contains($0) ? $0 : 0 })
            }
            if let load = candidate.load {
                beginCall(.load)
                let status = Array(saved.schema.version.utf8).withUnsafeBufferPointer { load(table, $0.baseAddress, $0.count) }
                _ = endCall()
                if status != GAME_OK { throw FakeHostError("hotswap_load failed with status \(FakeStatus.name(status))") }
            }
        } catch {
            state = saved.state
            bindings = saved.bindings
            module = saved.module
            throw error
        }
        previous = (saved.module, saved.schema)
        schema = incoming
    }

    /// The first field the newer module retyped, or computed
    /// (GAME_FIELD_MIGRATED), that the older module declares: rolling back
    /// past it would mix values from two points in time.
    static func fieldMixingTimes(newer: [FakeFieldSpec], older: [FakeFieldSpec]) -> String? {
        for field in newer {
            guard let old = older.first(where: { $0.kind == field.kind && $0.name == field.name }) else { continue }
            if field.migrated || old.type != field.type { return field.name }
        }
        return nil
    }
}
