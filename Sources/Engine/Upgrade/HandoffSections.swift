/// Every section of a handoff's body, as values: what `Engine` composes
/// from its parts before the hold's write, and what a resumed engine reads
/// whole before it takes anything over (`Resume.open`).
///
/// The order of `all` is the order an engine writes the sections in (the
/// reader takes them in any order, each once; keeping the writer's order
/// keeps the bytes the same as every earlier engine's).
struct HandoffSections: Equatable {
    var engine: EngineHandoff
    var listeners: ListenersHandoff
    var connections: ConnectionsHandoff
    var world: WorldHandoff
    var logic: LogicHandoff
    var database: DatabaseHandoff
    /// Empty from an engine that wrote format 2 or older (it had no timers).
    var time: TimeHandoff
    /// Empty from an engine that wrote format 3 or older (no resume tokens).
    var resume: ResumeHandoff

    init(engine: EngineHandoff, listeners: ListenersHandoff, connections: ConnectionsHandoff, world: WorldHandoff,
         logic: LogicHandoff, database: DatabaseHandoff, time: TimeHandoff = TimeHandoff(),
         resume: ResumeHandoff = ResumeHandoff())
    {
        self.time = time
        self.resume = resume
        self.engine = engine
        self.listeners = listeners
        self.connections = connections
        self.world = world
        self.logic = logic
        self.database = database
    }

    /// Every section, in the order they are written.
    var all: [any HandoffSectionCodable] { [engine, listeners, connections, world, logic, database, time, resume] }

    /// Writes every section, each framed by its tag and length.
    func encode(into writer: inout HandoffWriter) {
        for section in all { section.encodeSection(into: &writer) }
    }

    /// Reads and checks every section of a decoded handoff (`decode` made
    /// sure each is there once).
    init(decoding handoff: Handoff) throws(HandoffError) {
        engine = try .decode(from: handoff)
        listeners = try .decode(from: handoff)
        connections = try .decode(from: handoff)
        world = try .decode(from: handoff)
        logic = try .decode(from: handoff)
        database = try .decode(from: handoff)
        time = handoff.has(.time) ? try .decode(from: handoff) : TimeHandoff()
        resume = handoff.has(.resume) ? try .decode(from: handoff) : ResumeHandoff()
    }
}
