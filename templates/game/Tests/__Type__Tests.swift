import LogicKit
import Testing
import __Type__Game

// What can be checked without a host: the verbs HELP will list. Requests,
// rooms, timers and durable fields need a state table; run them on the
// fake host (HotswapTesting) where this repository has it, or against a
// real server (docs/WRITING-GAMES.md, "Serving").
@Suite struct __Type__Tests {
    @Test func helpListsTheGamesVerbs() {
        let verbs = __Type__.commands.filter(\.listed).map { "\($0.verb)" }
        #expect(verbs.contains("ROLL"))
        #expect(verbs.contains("WINS"))
        #expect(verbs.contains("LOGIN") && verbs.contains("JOIN"))
    }

    @Test func versionIsSemantic() {
        #expect("\(__Type__.version)".split(separator: ".").count == 3)
    }
}
