// Test fixture "v2": a later build of the game that answers PING
// differently, adds a session field with a default ("title"), and drops the
// global "logins" field (which the engine must keep, hidden, for a rollback).
// It runs the default game's clock the same way (Timers.swift): the timers
// 1.1.0 set (round_end, gem_respawn, afk) are handled here after a RELOAD,
// and the ones set here by 1.1.0 after a ROLLBACK.
import GameABI
import LogicKit
import Protocol

enum Field: Int32, CaseIterable {
    case name = 0, nameKey, x, y, score, gems, round, title, roundPoints, lastRequest, afkTimer

    var declaration: FieldDeclaration {
        switch self {
        case .name: .string(GAME_KIND_SESSION, "name")
        case .nameKey: .string(GAME_KIND_SESSION, "name_key", unique: true)
        case .x: .int(GAME_KIND_SESSION, "x")
        case .y: .int(GAME_KIND_SESSION, "y")
        case .score: .int(GAME_KIND_PLAYER, "score")
        case .gems: .int(GAME_KIND_ROOM, "gems")
        case .round: .int(GAME_KIND_ROOM, "round")
        case .title: .string(GAME_KIND_SESSION, "title", default: "rookie")
        case .roundPoints: .int(GAME_KIND_SESSION, "round_points")
        case .lastRequest: .int(GAME_KIND_SESSION, "last_request_ms")
        case .afkTimer: .int(GAME_KIND_SESSION, "afk_timer")
        }
    }
}

@_cdecl("hotswap_abi_version")
public func hotswapABIVersion() -> UInt32 { UInt32(GAME_ABI_VERSION) }

@_cdecl("hotswap_describe")
public func hotswapDescribe(_ describer: UnsafePointer<game_describer>?) -> Int32 {
    guard let describer else { return GAME_ERR_BAD_ARGUMENT }
    return describe(describer, name: "gems", version: "2.0.0", fields: Field.allCases.map(\.declaration))
}

@_cdecl("hotswap_handle")
public func hotswapHandle(_ message: UnsafePointer<game_message>?, _ table: UnsafePointer<game_state_table>?) -> Int32 {
    guard let message, let table else { return GAME_ERR_BAD_ARGUMENT }
    let host = Host(table)
    let session = message.pointee.session
    let line = UnsafeRawBufferPointer(start: message.pointee.line, count: message.pointee.length)
    // Every line is activity, as in 1.1.0: the afk timer reads it.
    host.setInt(session, Field.lastRequest.rawValue, Int64(bitPattern: host.nowMilliseconds()))
    guard let request = Request(line: line) else { return host.reply("-ERR EMPTY empty request") }
    if request.verbIs("PING") { return host.reply("+PONG v2") }
    if request.verbIs("BUILD") {
        // Which copy of the Protocol library this image runs (see ProtocolBuild.swift).
        return withScratch(64) { buffer in
            var reply = LineWriter.reply(buffer)
            reply.append("BUILD protocol=")
            reply.append(protocolBuildTag())
            return host.reply(reply)
        }
    }
    if request.verbIs("TITLE") {
        return host.setString(session, Field.title.rawValue, request.arguments) == GAME_OK
            ? host.reply("+OK") : host.reply("-ERR BAD_TITLE")
    }
    if request.verbIs("WHOAMI") {
        // "+ME name room x y score title": everything v1 stored, read back.
        return withScratch(256) { buffer in
            var reply = LineWriter.reply(buffer)
            reply.append("ME ")
            withScratch(64) { scratch in
                reply.append(raw: host.string(session, Field.name.rawValue, into: scratch) ?? UnsafeRawBufferPointer(start: nil, count: 0))
            }
            reply.space()
            withScratch(64) { scratch in
                if let room = host.room(of: session), let name = host.name(of: room, into: scratch) {
                    reply.append(raw: name)
                } else {
                    reply.append("-")
                }
            }
            for field in [Field.x, .y] {
                reply.space()
                reply.append(host.int(session, field.rawValue) ?? -1)
            }
            reply.space()
            reply.append(host.player(of: session).flatMap { host.int($0, Field.score.rawValue) } ?? -1)
            reply.space()
            withScratch(64) { scratch in
                reply.append(raw: host.string(session, Field.title.rawValue, into: scratch) ?? UnsafeRawBufferPointer(start: nil, count: 0))
            }
            return host.reply(reply)
        }
    }
    if request.verbIs("RESUME") {
        // Tokens are the engine's: a session a 1.x module gave a token to
        // resumes under this build too. "+RESUMED v2 name" or the status.
        var tokens = request.argumentTokens
        guard let token = tokens.next() else { return host.reply("-ERR SYNTAX usage: RESUME token") }
        return withScratch(Int(GAME_RESUME_TOKEN_LENGTH)) { next in
            let outcome = host.resume(session, token: token, newToken: next)
            guard outcome.status == GAME_OK else { return host.reply("-ERR BAD_TOKEN v2") }
            return withScratch(128) { buffer in
                var reply = LineWriter.reply(buffer)
                reply.append("RESUMED v2 ")
                withScratch(64) { scratch in
                    reply.append(raw: host.string(outcome.session, Field.name.rawValue, into: scratch) ?? UnsafeRawBufferPointer(start: nil, count: 0))
                }
                reply.append(" resume ")
                reply.append(raw: outcome.token)
                return host.reply(reply)
            }
        }
    }
    return host.reply("-ERR UNKNOWN_COMMAND v2 knows PING, WHOAMI and TITLE")
}
