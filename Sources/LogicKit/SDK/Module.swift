import GameABI
import Protocol

/// The exports of a game's module, implemented once for every `Game`.
/// A module's `Exports.swift` forwards each C symbol here:
///
///     @_cdecl("hotswap_handle")
///     public func handle(_ m: UnsafePointer<game_message>?, _ t: UnsafePointer<game_state_table>?) -> Int32 {
///         Module<MyGame>.handle(m, t)
///     }
///
/// Each call builds the game's field handles on the stack, runs the game's
/// code, and turns a thrown `Refusal` into "undo, then `-ERR`".
public enum Module<G: Game> {
    /// `hotswap_abi_version`.
    @inlinable public static func abiVersion() -> UInt32 { UInt32(GAME_ABI_VERSION) }

    /// `hotswap_describe`: the name, version and fields.
    @inlinable public static func describe(_ describer: UnsafePointer<game_describer>?) -> Int32 {
        guard let describer else { return GAME_ERR_BAD_ARGUMENT }
        let d = describer.pointee
        let status = d.module(describer, G.name.utf8Start, G.name.utf8CodeUnitCount,
                              G.version.utf8Start, G.version.utf8CodeUnitCount)
        guard status == GAME_OK else { return status }
        // Fields a retype computes are flagged for the engine.
        var counting = Schema(describing: nil)
        let handles = G.Fields(&counting)
        var describing = Describing(describer: describer, computed: G.migrations.compactMap { $0.computes(handles) })
        return withUnsafeMutablePointer(to: &describing) { pointer in
            var schema = Schema(describing: pointer)
            _ = G.Fields(&schema)
            return pointer.pointee.status
        }
    }

    /// Runs `body` with a context for this call.
    
    @inlinable static func withContext<R>(_ table: UnsafePointer<game_state_table>, session: game_id,
                               _ body: (Context<G>) -> R) -> R {
        var schema = Schema(describing: nil)
        var fields = G.Fields(&schema)
        var state = CallState()
        return withUnsafePointer(to: &fields) { fields in
            withUnsafeMutablePointer(to: &state) { state in
                body(Context<G>(host: Host(table), fields: fields, session: session, state: state))
            }
        }
    }

    /// `hotswap_handle`: routes one request line to its command.
    @inlinable public static func handle(_ message: UnsafePointer<game_message>?, _ table: UnsafePointer<game_state_table>?) -> Int32 {
        guard let message, let table else { return GAME_ERR_BAD_ARGUMENT }
        let line = Text(UnsafeRawBufferPointer(start: message.pointee.line, count: message.pointee.length))
        return withContext(table, session: message.pointee.session) { c in
            do throws(Refusal) {
                try G.received(c, line)
            } catch {
                c.refuse(error.line)
                return GAME_OK
            }
            // From here on a refusal notes the line again after its undo.
            c.state.pointee.request = line
            guard Bytes.isValidUTF8(line.bytes) else {
                c.reply(Refusal("BAD_UTF8", "request is not valid UTF-8").line)
                return GAME_OK
            }
            guard let request = Request(line: line.bytes) else {
                c.reply(Refusal("EMPTY", "empty request, try HELP").line)
                return GAME_OK
            }
            // A plain loop: `first(where:)` would box its closure here.
            let commands = G.commands
            var found: Int?
            for index in commands.indices where request.verbIs(commands[index].verb) {
                found = index
                break
            }
            guard let found else {
                c.reply(Refusal("UNKNOWN_COMMAND", "unknown command, try HELP").line)
                return GAME_OK
            }
            switch commands[found].needs {
            case .nothing: break
            case .login, .room:
                guard c.host.player(of: c.sessionID) != nil else {
                    c.reply(Refusal.notLoggedIn.line)
                    return GAME_OK
                }
                if commands[found].needs == .room, c.host.room(of: c.sessionID) == nil {
                    c.reply(Refusal.notInRoom.line)
                    return GAME_OK
                }
            }
            var arguments = Arguments(request, usage: .usage(commands[found].verb, commands[found].usage))
            do throws(Refusal) {
                try commands[found].handler(c, &arguments)
            } catch {
                // Nothing the handler did stays; what `received` noted
                // (the line arrived) is noted again.
                c.refuse(error.line)
            }
            return GAME_OK
        }
    }

    /// `hotswap_timer`.
    @inlinable public static func timer(_ event: UnsafePointer<game_timer_event>?, _ table: UnsafePointer<game_state_table>?) -> Int32 {
        guard let event, let table else { return GAME_ERR_BAD_ARGUMENT }
        let e = event.pointee
        let fired = TimerFired(
            id: e.timer, owner: e.owner, event: Text(UnsafeRawBufferPointer(start: e.event, count: e.event_length)),
            payload: Text(UnsafeRawBufferPointer(start: e.payload, count: e.payload_length)),
            lateMilliseconds: e.late_ms, count: e.fired)
        return withContext(table, session: 0) { c in
            do throws(Refusal) { try G.timer(c, fired) } catch { c.undo() }
            return GAME_OK
        }
    }

    /// `hotswap_tick`.
    @inlinable public static func tick(_ tick: UnsafePointer<game_tick>?, _ table: UnsafePointer<game_state_table>?) -> Int32 {
        guard let tick, let table else { return GAME_ERR_BAD_ARGUMENT }
        let k = tick.pointee
        return withContext(table, session: 0) { c in
            let info = Tick(number: k.tick, stepMilliseconds: Int(k.step_ms), skipped: Int(k.skipped))
            do throws(Refusal) { try G.tick(c, c.room(k.room), info) } catch { c.undo() }
            return GAME_OK
        }
    }

    /// `hotswap_session_closed`: the session leaves its room first.
    @inlinable public static func sessionClosed(_ session: game_id, _ table: UnsafePointer<game_state_table>?) {
        guard let table else { return }
        withContext(table, session: session) { c in
            if let room = c.me.room { G.leaving(c, c.me, room, c.me.isAway ? .timeout : .quit) }
        }
    }

    /// `hotswap_session_away`.
    @inlinable public static func sessionAway(_ session: game_id, _ table: UnsafePointer<game_state_table>?) {
        guard let table else { return }
        withContext(table, session: session) { c in G.away(c, c.me) }
    }

    /// `hotswap_session_back`.
    @inlinable public static func sessionBack(_ session: game_id, _ table: UnsafePointer<game_state_table>?) {
        guard let table else { return }
        withContext(table, session: session) { c in G.back(c, c.me) }
    }

    /// `hotswap_auth`: the engine's answer to the standard LOGIN or SECRET.
    @inlinable public static func auth(_ result: UnsafePointer<game_auth_result>?, _ table: UnsafePointer<game_state_table>?) -> Int32 {
        guard let result, let table else { return GAME_ERR_BAD_ARGUMENT }
        return withContext(table, session: result.pointee.session) { c in
            G.authAnswered(c, result.pointee)
            return GAME_OK
        }
    }

    /// `hotswap_migrate`: one entity, from the outgoing module.
    @inlinable public static func migrate(_ migration: UnsafePointer<game_migration>?, _ entity: game_id,
                               _ table: UnsafePointer<game_state_table>?) -> Int32 {
        guard let migration, let table else { return GAME_ERR_BAD_ARGUMENT }
        return withContext(table, session: 0) { c in
            Migration<G>.run(G.migrations, up: true, migration, entity, c)
        }
    }

    /// `hotswap_migrate_down`: one entity, back to the previous module.
    @inlinable public static func migrateDown(_ migration: UnsafePointer<game_migration>?, _ entity: game_id,
                                   _ table: UnsafePointer<game_state_table>?) -> Int32 {
        guard let migration, let table else { return GAME_ERR_BAD_ARGUMENT }
        return withContext(table, session: 0) { c in
            Migration<G>.run(G.migrations, up: false, migration, entity, c)
        }
    }
}
