import Crypto
import Foundation
import Testing

/// Players are who they say they are (ABI 1.4), over real sockets with the
/// default game: per-player secrets kept as scrypt hashes in the real
/// SQLite file, guests and their claims, `--require-secret`, throttles per
/// address and per player, new players per address, signed tokens (HS256,
/// ES256) and the modules that cannot take part. `--secret-cost 10` keeps
/// each hash to a millisecond or two: the cost is what BENCHMARKS.md
/// measures, not what these check.
@Suite struct AuthTests {
    typealias Persistence = PersistenceTests
    static let cheap = ["--secret-cost", "10"]

    @Test func aSecretIsNeededOnceSetAndOnlyItsHashIsStored() throws {
        let scratch = try Persistence.Scratch()
        let database = scratch.database.path
        let server = try TestServer(arguments: Self.cheap + ["--database", database, "--flush-interval", "50"])
        let alice = try server.connect()
        #expect(try alice.call("LOGIN Alice tr0ub4dor") == "+WELCOME Alice login 1 score 0")
        #expect(try alice.call("QUIT") == "+BYE")

        let guesser = try server.connect()
        #expect(try guesser.call("LOGIN alice") == "-ERR BAD_SECRET wrong secret for that name")
        #expect(try guesser.call("LOGIN alice wrong-one") == "-ERR BAD_SECRET wrong secret for that name")
        #expect(try guesser.call("SCORE") == "-ERR NOT_LOGGED_IN LOGIN name first")
        #expect(try guesser.call("LOGIN ALICE tr0ub4dor") == "+WELCOME ALICE login 2 score 0")

        let status = try server.statusFields()
        #expect(status["logins_verified"] == "1" && status["logins_failed"] == "2" && status["players_created"] == "1",
                "\(status)")
        #expect(!status.values.contains { $0.contains("tr0ub4dor") })
        try Persistence.waitForFlush(server)
        let stored = try Persistence.sql(database, "SELECT \"auth.secret:string\" FROM players WHERE key = 'alice'")
        #expect(stored.hasPrefix("scrypt$10$8$1$"), "\(stored)")
        #expect(!stored.contains("tr0ub4dor"))
        #expect(server.stop() == 0)
        #expect(!server.log.contains("tr0ub4dor"), "the secret reached the log")

        // Read back by the next server: the same secret, and only it.
        let again = try TestServer(arguments: Self.cheap + ["--database", database])
        #expect(try again.connect().call("LOGIN alice nope-nope") == "-ERR BAD_SECRET wrong secret for that name")
        #expect(try again.connect().call("LOGIN alice tr0ub4dor") == "+WELCOME alice login 3 score 0")
    }

    /// A guest's name is anyone's until its player sets a secret: with
    /// SECRET while logged in, or by logging in to it with one.
    @Test func guestsClaimTheirNames() throws {
        let server = try TestServer(arguments: Self.cheap)
        let bob = try server.connect()
        #expect(try bob.call("LOGIN bob") == "+WELCOME bob login 1 score 0")
        #expect(try bob.call("SECRET hunter22") == "+OK secret set: from now on log in with LOGIN name secret")
        #expect(try bob.call("QUIT") == "+BYE")
        #expect(try server.connect().call("LOGIN bob") == "-ERR BAD_SECRET wrong secret for that name")
        #expect(try server.connect().call("LOGIN bob hunter22") == "+WELCOME bob login 2 score 0")

        let carol = try server.connect()
        #expect(try carol.call("LOGIN carol") == "+WELCOME carol login 3 score 0")
        #expect(try carol.call("QUIT") == "+BYE")
        #expect(try server.connect().call("LOGIN carol s3cr3t") == "+WELCOME carol login 4 score 0")
        #expect(try server.connect().call("LOGIN carol") == "-ERR BAD_SECRET wrong secret for that name")
        #expect(try server.connect().call("SECRET abcd") == "-ERR NOT_LOGGED_IN LOGIN name first")
        #expect(try server.connect().call("LOGIN dave abc") == "-ERR BAD_SECRET a secret is 4 to 256 characters without spaces")
    }

    @Test func requireSecretRefusesGuests() throws {
        let server = try TestServer(arguments: Self.cheap + ["--require-secret"])
        let dave = try server.connect()
        #expect(try dave.call("LOGIN dave") == "-ERR SECRET_REQUIRED this server needs LOGIN name secret")
        #expect(try dave.call("LOGIN dave letmein") == "+WELCOME dave login 1 score 0")
    }

    /// Lines sent behind a LOGIN wait for its answer and are handled after
    /// it, in order, even when they arrive in the same write.
    @Test func linesBehindALoginWaitForItsAnswer() throws {
        let server = try TestServer(arguments: Self.cheap)
        let erin = try server.connect()
        try erin.write(Array("LOGIN erin pw-12345\r\nSCORE\r\nJOIN hall\r\nPING\r\n".utf8))
        #expect(try erin.reply() == "+WELCOME erin login 1 score 0")
        #expect(try erin.reply() == "+SCORE erin:0")
        #expect(try erin.reply().hasPrefix("+JOINED hall at "))
        #expect(try erin.reply() == "+PONG")
    }

    /// A line held behind a login that fails may itself log in, with an
    /// answer given at once while the held lines are being replayed.
    @Test func aHeldLoginIsHandledAfterTheOneBeforeItFails() throws {
        let server = try TestServer(arguments: Self.cheap)
        #expect(try server.connect().call("LOGIN alice pw-alice") == "+WELCOME alice login 1 score 0")
        let client = try server.connect()
        try client.write(Array("LOGIN alice wrong-one\r\nLOGIN bob\r\nPING\r\nLOGIN carol pw-carol\r\nSCORE\r\n".utf8))
        #expect(try client.reply() == "-ERR BAD_SECRET wrong secret for that name")
        #expect(try client.reply() == "+WELCOME bob login 2 score 0")
        #expect(try client.reply() == "+PONG")
        #expect(try client.reply() == "-ERR ALREADY_LOGGED_IN you are already logged in")
        #expect(try client.reply() == "+SCORE bob:0")
    }

    /// Checks cost a worker's time whether they fail or not: a player
    /// online elsewhere is refused before any hash, a hang-up mid-check
    /// leaves nothing waiting, and one address gets a few checks a minute.
    @Test func checksThatCannotFailAreStillBounded() throws {
        let server = try TestServer(arguments: Self.cheap + ["--max-login-checks-per-ip", "3", "--new-players-per-minute", "0",
                                                             "--no-exempt-loopback", "--max-connections-per-ip", "0"])
        let online = try server.connect()
        #expect(try online.call("LOGIN pat pw-pat1") == "+WELCOME pat login 1 score 0")
        #expect(try server.connect().call("LOGIN pat pw-pat1") == "-ERR NAME_TAKEN that name is in use")
        let quitter = try server.connect()
        try quitter.send("LOGIN quinn pw-quinn")
        quitter.reset()
        #expect(try waitUntil(NotAHang.seconds) { try server.statusFields()["logins_checking"] == "0" })
        // pat's and (at most) quinn's checks were 2 of the 3 this minute.
        var replies: [String] = []
        for index in 0..<3 { replies.append(try server.connect().call("LOGIN r\(index) pw-r\(index)")) }
        #expect(replies.last?.hasPrefix("-ERR THROTTLED") == true, "\(replies)")
    }

    /// Wrong secrets for one player, from anywhere, close that player's
    /// logins for the rest of the minute: the right secret included.
    @Test func guessesAtOnePlayerAreThrottled() throws {
        let server = try TestServer(arguments: Self.cheap + ["--max-failed-logins-per-player", "3"])
        #expect(try server.connect().call("LOGIN frank right-one") == "+WELCOME frank login 1 score 0")
        for _ in 0..<3 {
            #expect(try server.connect().call("LOGIN frank wrong-one") == "-ERR BAD_SECRET wrong secret for that name")
        }
        let reply = try server.connect().call("LOGIN frank right-one")
        #expect(reply.hasPrefix("-ERR THROTTLED too many attempts; retry in "), "\(reply)")
        // Another player is not affected.
        #expect(try server.connect().call("LOGIN gina other-one") == "+WELCOME gina login 2 score 0")
        #expect(try server.statusFields()["logins_throttled"] == "1")
    }

    @Test func guessesFromOneAddressAreThrottled() throws {
        let server = try TestServer(arguments: Self.cheap + ["--max-failed-logins-per-ip", "2", "--no-exempt-loopback"])
        #expect(try server.connect().call("LOGIN hank right-one") == "+WELCOME hank login 1 score 0")
        #expect(try server.connect().call("LOGIN ivy right-one") == "+WELCOME ivy login 2 score 0")
        #expect(try server.connect().call("LOGIN hank wrong-one").hasPrefix("-ERR BAD_SECRET"))
        #expect(try server.connect().call("LOGIN ivy wrong-one").hasPrefix("-ERR BAD_SECRET"))
        #expect(try server.connect().call("LOGIN ivy right-one").hasPrefix("-ERR THROTTLED"))
    }

    /// A loop of LOGIN junkN from one address stops after a few new
    /// players a minute; players who exist still log in.
    @Test func newPlayersArePacedPerAddress() throws {
        let server = try TestServer(arguments: Self.cheap + ["--new-players-per-minute", "2", "--no-exempt-loopback"])
        #expect(try server.connect().call("LOGIN junk1") == "+WELCOME junk1 login 1 score 0")
        #expect(try server.connect().call("LOGIN junk2 secret-2") == "+WELCOME junk2 login 2 score 0")
        #expect(try server.connect().call("LOGIN junk3").hasPrefix("-ERR THROTTLED too many attempts; retry in "))
        #expect(try server.connect().call("LOGIN junk4 secret-4").hasPrefix("-ERR THROTTLED"))
        #expect(try server.connect().call("LOGIN junk1") == "+WELCOME junk1 login 3 score 0")
        let status = try server.statusFields()
        #expect(status["new_players_refused"] == "2" && status["players_stored"] == "2", "\(status)")
    }

    /// Loopback is exempt from the per-address rules by default (a load
    /// test makes thousands of players from one machine).
    @Test func loopbackMakesNewPlayersFreelyByDefault() throws {
        let server = try TestServer(arguments: Self.cheap + ["--new-players-per-minute", "1"])
        for index in 0..<5 {
            #expect(try server.connect().call("LOGIN p\(index)").hasPrefix("+WELCOME p\(index)"))
        }
    }

    // MARK: - Signed tokens

    static func base64URL(_ data: some DataProtocol) -> String {
        Data(data).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func token(alg: String, claims: [String: Any], sign: (Data) throws -> Data) throws -> String {
        let header = base64URL(try JSONSerialization.data(withJSONObject: ["alg": alg, "typ": "JWT"]))
        let payload = base64URL(try JSONSerialization.data(withJSONObject: claims))
        let signed = "\(header).\(payload)"
        return "\(signed).\(base64URL(try sign(Data(signed.utf8))))"
    }

    static func keyFile(_ contents: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("hotswap-jwt-\(UUID().uuidString)").path
        try contents.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func hs256TokensAreTheOnlyLogin() throws {
        let secret = "a-studio-secret-of-at-least-32-bytes!"
        let path = try Self.keyFile(secret + "\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let server = try TestServer(arguments: ["--auth-jwt-key", path])
        let now = Date().timeIntervalSince1970
        func hs256(_ claims: [String: Any], key: String = secret) throws -> String {
            try Self.token(alg: "HS256", claims: claims) {
                Data(HMAC<SHA256>.authenticationCode(for: $0, using: SymmetricKey(data: Data(key.utf8))))
            }
        }
        let client = try server.connect()
        #expect(try client.call("LOGIN jules") == "-ERR BAD_SECRET that token is not valid (forged, expired or for no one)")
        #expect(try client.call("LOGIN jules pw-12345") == "-ERR SYNTAX usage: LOGIN token")
        #expect(try client.call("LOGIN \(try hs256(["sub": "jules", "exp": now - 120]))").hasPrefix("-ERR BAD_SECRET"))
        #expect(try client.call("LOGIN \(try hs256(["sub": "jules", "exp": now + 600], key: secret + "x"))").hasPrefix("-ERR BAD_SECRET"))
        #expect(try client.call("LOGIN \(try hs256(["sub": "jules"]))").hasPrefix("-ERR BAD_SECRET"), "a token without exp")
        let unsigned = try Self.token(alg: "none", claims: ["sub": "jules", "exp": now + 600]) { _ in Data() }
        #expect(try client.call("LOGIN \(unsigned)").hasPrefix("-ERR BAD_SECRET"))
        #expect(try client.call("SCORE") == "-ERR NOT_LOGGED_IN LOGIN name first")
        #expect(try client.call("LOGIN \(try hs256(["sub": "Jules", "exp": now + 600]))") == "+WELCOME Jules login 1 score 0")
        #expect(try client.call("SECRET whatever") == "-ERR NOT_ALLOWED players log in with tokens here; there is no secret to set")
        let status = try server.statusFields()
        #expect(status["logins_verified"] == "1" && status["logins_failed"] == "5", "\(status)")
    }

    /// A studio signing tokens for several services with one key names
    /// this one: a token for another audience or from another issuer is
    /// refused.
    @Test func audienceAndIssuerAreCheckedWhenSet() throws {
        let secret = "a-studio-secret-of-at-least-32-bytes!"
        let path = try Self.keyFile(secret)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let server = try TestServer(arguments: ["--auth-jwt-key", path, "--auth-jwt-audience", "gems-eu",
                                                "--auth-jwt-issuer", "https://login.example"])
        let now = Date().timeIntervalSince1970
        func hs256(_ claims: [String: Any]) throws -> String {
            try Self.token(alg: "HS256", claims: claims) {
                Data(HMAC<SHA256>.authenticationCode(for: $0, using: SymmetricKey(data: Data(secret.utf8))))
            }
        }
        let base: [String: Any] = ["sub": "uma", "exp": now + 600, "iss": "https://login.example"]
        let client = try server.connect()
        #expect(try client.call("LOGIN \(try hs256(base))").hasPrefix("-ERR BAD_SECRET"), "no aud")
        #expect(try client.call("LOGIN \(try hs256(base.merging(["aud": "chat"]) { $1 }))").hasPrefix("-ERR BAD_SECRET"))
        #expect(try client.call("LOGIN \(try hs256(base.merging(["aud": "gems-eu", "iss": "evil"]) { $1 }))").hasPrefix("-ERR BAD_SECRET"))
        #expect(try client.call("LOGIN \(try hs256(base.merging(["aud": ["chat", "gems-eu"]]) { $1 }))") == "+WELCOME uma login 1 score 0")
    }

    @Test func es256TokensAreCheckedWithThePublicKey() throws {
        let signing = P256.Signing.PrivateKey()
        let path = try Self.keyFile(signing.publicKey.pemRepresentation)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let server = try TestServer(arguments: ["--auth-jwt-key", path])
        let now = Date().timeIntervalSince1970
        func es256(_ claims: [String: Any], key: P256.Signing.PrivateKey = signing) throws -> String {
            try Self.token(alg: "ES256", claims: claims) { try key.signature(for: $0).rawRepresentation }
        }
        let client = try server.connect()
        #expect(try client.call("LOGIN \(try es256(["sub": "kim", "exp": now + 600], key: P256.Signing.PrivateKey()))").hasPrefix("-ERR BAD_SECRET"))
        // HS256 signed with the public key's own bytes: the old confusion.
        let confused = try Self.token(alg: "HS256", claims: ["sub": "kim", "exp": now + 600]) {
            Data(HMAC<SHA256>.authenticationCode(for: $0, using: SymmetricKey(data: Data(signing.publicKey.pemRepresentation.utf8))))
        }
        #expect(try client.call("LOGIN \(confused)").hasPrefix("-ERR BAD_SECRET"))
        #expect(try client.call("LOGIN \(try es256(["sub": "kim", "exp": now + 600, "nbf": now + 3600]))").hasPrefix("-ERR BAD_SECRET"))
        #expect(try client.call("LOGIN \(try es256(["sub": "kim", "exp": now + 600]))") == "+WELCOME kim login 1 score 0")
    }

    @Test func aKeyThatCannotWorkRefusesTheStart() throws {
        let path = try Self.keyFile("too short")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (status, log) = try runServerExpectingExit(["--auth-jwt-key", path])
        #expect(status != 0)
        #expect(log.contains("an HS256 secret must be at least 32 bytes"), "\(log)")
    }

    // MARK: - Modules that cannot take part

    /// Where every login goes through the engine, a module that cannot
    /// answer one is refused at start and by RELOAD.
    @Test func aModuleWithoutHotswapAuthCannotServeWhereSecretsAreRequired() throws {
        let (status, log) = try runServerExpectingExit(["--require-secret", "--module", Products.library("GameLogicV2").path])
        #expect(status != 0)
        #expect(log.contains("exports no hotswap_auth"), "\(log)")

        let server = try TestServer(arguments: Self.cheap + ["--require-secret"])
        let reply = try server.connectAdmin().call("RELOAD \(Products.library("GameLogicV2").path)")
        #expect(reply.hasPrefix("-ERR") && reply.contains("hotswap_auth"), "\(reply)")
    }

    /// An older module attaches players itself (player_attach, as the
    /// TimeProbeModule fixture's LOGIN does): never to a player who set a
    /// secret, which it gets as GAME_ERR_BAD_SECRET (-11).
    @Test func anOlderModuleCannotAttachAPlayerWithASecret() throws {
        let scratch = try Persistence.Scratch()
        let database = ["--database", scratch.database.path]
        do {
            let server = try TestServer(arguments: Self.cheap + database)
            #expect(try server.connect().call("LOGIN lena pw-lena") == "+WELCOME lena login 1 score 0")
            #expect(server.stop() == 0)
        }
        let server = try TestServer(arguments: database + ["--module", Products.library("TimeProbeModule").path])
        #expect(try server.connect().call("LOGIN lena") == "-ERR -11")
        #expect(try server.connect().call("LOGIN mona") == "+OK")
    }

    /// A secret is in the player's record: an engine upgrade hands it over.
    @Test func secretsSurviveAnEngineUpgrade() throws {
        let scratch = try Persistence.Scratch()
        let server = try TestServer(arguments: Self.cheap + ["--database", scratch.database.path])
        let nina = try server.connect()
        #expect(try nina.call("LOGIN nina pw-nina") == "+WELCOME nina login 1 score 0")
        #expect(try server.connectAdmin().call("UPGRADE").hasPrefix("+OK engine"))
        #expect(try nina.call("SCORE") == "+SCORE nina:0")
        #expect(try nina.call("QUIT") == "+BYE")
        #expect(try server.connect().call("LOGIN oscar") == "+WELCOME oscar login 2 score 0")
        #expect(try server.connect().call("LOGIN nina") == "-ERR BAD_SECRET wrong secret for that name")
    }
}
