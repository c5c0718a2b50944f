// FaultGuardProbe: exercises Sources/FaultGuard in a process of its own, so a
// guard that fails to contain something kills the probe, not the test runner.
// Tests/ServerTests/FaultGuardTests.swift runs it and reads its output: one
// `key=value ...` line per case on stdout.
//
//   FaultGuardProbe kinds         every fault kind of the fixtures, 100 runs each,
//                                 the other exports, nesting
//   FaultGuardProbe timeouts      hangs: pure loop, loop in table calls, loop in libc
//   FaultGuardProbe soak [N]      N contained faults in a row (default 10000), RSS
//   FaultGuardProbe engine-fault  a fault inside an engine section: must die
//   FaultGuardProbe outside-fault a fault outside any module call: must die
//   FaultGuardProbe unattached-thread-overflow  stack overflow on a thread
//                                 without fg_attach_thread: must die
//   FaultGuardProbe install       only fg_install, prints its result
//   FaultGuardProbe bench         trampoline vs direct call, ns per call
//
// The fake state table keeps one session ("alice") and one room, records
// what the module sends, and brackets every function in an engine section
// as the real engine's thunks do.
import FaultGuard
import FaultGuardProbeSupport
import GameABI

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// MARK: - Output

func emit(_ line: String) {
    print(line)
    fflush(nil)
}

func fail(_ message: String) -> Never {
    emit("probe-error \(message)")
    exit(2)
}

// MARK: - The fake engine

let alice: game_id = (UInt64(GAME_KIND_SESSION) << 56) | (1 << 32) | 1
let lobby: game_id = (UInt64(GAME_KIND_ROOM) << 56) | (1 << 32) | 1

enum GetIntMode { case plain, slow, faultInEngine, nested }

struct FakeWorld {
    var score: Int64 = 0
    var name: [UInt8] = []
    var roomName: [UInt8] = []
    var inRoom = false
    var identified = 0
    var replies: [String] = []
    var sends: [String] = []
    var broadcasts: [String] = []
    var getIntMode = GetIntMode.plain
    var slowMicroseconds: UInt32 = 2000
    var nestedStatus: Int32 = -1

    mutating func clearOutput() {
        replies.removeAll(keepingCapacity: true)
        sends.removeAll(keepingCapacity: true)
        broadcasts.removeAll(keepingCapacity: true)
    }
}

nonisolated(unsafe) var world = FakeWorld()
nonisolated(unsafe) var describedFields: Int32 = 0

func text(_ bytes: UnsafePointer<UInt8>?, _ length: Int) -> String {
    guard let bytes else { return "" }
    return String(decoding: UnsafeBufferPointer(start: bytes, count: length), as: UTF8.self)
}

func makeTable() -> UnsafeMutablePointer<game_state_table> {
    let table = UnsafeMutablePointer<game_state_table>.allocate(capacity: 1)
    table.initialize(to: game_state_table())
    table.pointee.size = UInt32(MemoryLayout<game_state_table>.size)
    table.pointee.abi_version = UInt32(GAME_ABI_VERSION)
    table.pointee.reply = { _, line, length in
        fg_enter_engine()
        world.replies.append(text(line, length))
        fg_leave_engine()
        return GAME_OK
    }
    table.pointee.send = { _, _, line, length in
        fg_enter_engine()
        world.sends.append(text(line, length))
        fg_leave_engine()
        return GAME_OK
    }
    table.pointee.close_session = { _, _ in GAME_OK }
    table.pointee.room_create = { _, name, length, out in
        fg_enter_engine()
        world.roomName = Array(UnsafeBufferPointer(start: name, count: length))
        out?.pointee = lobby
        fg_leave_engine()
        return GAME_OK
    }
    table.pointee.room_find = { _, name, length, out in
        fg_enter_engine()
        let found = !world.roomName.isEmpty && world.roomName == Array(UnsafeBufferPointer(start: name, count: length))
        if found { out?.pointee = lobby }
        fg_leave_engine()
        return found ? GAME_OK : GAME_ERR_NOT_FOUND
    }
    table.pointee.room_join = { _, room, _ in
        fg_enter_engine()
        world.inRoom = room == lobby
        fg_leave_engine()
        return room == lobby ? GAME_OK : GAME_ERR_BAD_ROOM
    }
    table.pointee.room_leave = { _, _ in GAME_OK }
    table.pointee.room_of = { _, _, out in
        fg_enter_engine()
        out?.pointee = world.inRoom ? lobby : 0
        fg_leave_engine()
        return GAME_OK
    }
    table.pointee.room_members = { _, _, _, _, count in
        count?.pointee = 0
        return GAME_OK
    }
    table.pointee.room_broadcast = { _, _, _, line, length in
        fg_enter_engine()
        world.broadcasts.append(text(line, length))
        fg_leave_engine()
        return GAME_OK
    }
    table.pointee.room_list = { _, _, _, count in
        count?.pointee = 0
        return GAME_OK
    }
    table.pointee.room_name = { _, _, _, _, length in
        length?.pointee = 0
        return GAME_OK
    }
    table.pointee.get_int = { table, _, _, out in
        fg_enter_engine()
        switch world.getIntMode {
        case .plain: break
        case .slow: usleep(world.slowMicroseconds)
        case .faultInEngine: probe_null_write()
        case .nested:
            var message = game_message(session: alice, line: nil, length: 0)
            var result: Int32 = 0
            world.nestedStatus = fg_call_handle(probe_noop_handle, &message, table, &result, nil)
        }
        out?.pointee = world.score
        fg_leave_engine()
        return GAME_OK
    }
    table.pointee.set_int = { _, _, _, value in
        fg_enter_engine()
        world.score = value
        fg_leave_engine()
        return GAME_OK
    }
    table.pointee.get_string = { _, _, _, buffer, capacity, length in
        fg_enter_engine()
        let count = world.name.count
        if let buffer { for i in 0..<min(count, capacity) { buffer[i] = world.name[i] } }
        length?.pointee = count
        fg_leave_engine()
        return GAME_OK
    }
    table.pointee.set_string = { _, _, _, bytes, length in
        fg_enter_engine()
        world.name = Array(UnsafeBufferPointer(start: bytes, count: length))
        fg_leave_engine()
        return GAME_OK
    }
    table.pointee.find_by_string = { _, _, _, _, _ in GAME_ERR_NOT_FOUND }
    table.pointee.now_ms = { _ in 0 }
    table.pointee.log = { _, _, _, _ in }
    table.pointee.session_identified = { _, _ in
        fg_enter_engine()
        world.identified += 1
        fg_leave_engine()
        return GAME_OK
    }
    return table
}

nonisolated(unsafe) let table = makeTable()

// MARK: - Modules

let productsDirectory: String = {
    guard let resolved = realpath("/proc/self/exe", nil) else { fail("cannot resolve /proc/self/exe") }
    defer { free(resolved) }
    let path = String(cString: resolved)
    return String(path[..<path.lastIndex(of: "/")!])
}()

struct Module {
    let name: String
    let image: UnsafeMutableRawPointer
    let handle: hotswap_handle_fn

    init(_ name: String) {
        self.name = name
        let path = "\(productsDirectory)/lib\(name).so"
        guard let image = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            fail("dlopen \(path): \(String(cString: dlerror()))")
        }
        self.image = image
        guard let symbol = dlsym(image, "hotswap_handle") else { fail("\(name) has no hotswap_handle") }
        handle = unsafeBitCast(symbol, to: hotswap_handle_fn.self)
    }

    func symbol<T>(_ name: String, as type: T.Type) -> T? {
        dlsym(image, name).map { unsafeBitCast($0, to: type) }
    }

    /// Registers the image with the guard: timeouts then interrupt only in it.
    func register() {
        let slot = fg_register_module_image(unsafeBitCast(handle, to: UnsafeRawPointer.self))
        if slot < 0 { fail("fg_register_module_image(\(name)) = \(slot)") }
    }

    func unregister() { fg_unregister_module_image(unsafeBitCast(handle, to: UnsafeRawPointer.self)) }
}

struct Outcome {
    var status: Int32
    var result: Int32
    var fault: fg_fault
    var nanoseconds: UInt64
}

func call(_ module: Module, _ line: String) -> Outcome {
    var fault = fg_fault()
    var result: Int32 = -1000
    let bytes = Array(line.utf8)
    let start = probe_now_ns()
    let status = bytes.withUnsafeBufferPointer { buffer in
        var message = game_message(session: alice, line: buffer.baseAddress, length: buffer.count)
        return fg_call_handle(module.handle, &message, table, &result, &fault)
    }
    return Outcome(status: status, result: result, fault: fault, nanoseconds: probe_now_ns() - start)
}

func statusName(_ status: Int32) -> String {
    switch status {
    case FG_OK: "OK"
    case FG_FAULT: "FAULT"
    case FG_TIMEOUT: "TIMEOUT"
    case FG_REFUSED: "REFUSED"
    default: "status\(status)"
    }
}

func stopName(_ stop: Int32) -> String {
    switch stop {
    case FG_STOP_NONE: "none"
    case FG_STOP_MODULE_PC: "module-pc"
    case FG_STOP_ENGINE_BOUNDARY: "engine-boundary"
    case FG_STOP_FORCED: "forced"
    default: "stop\(stop)"
    }
}

func describe(_ pc: UnsafeRawPointer?) -> String {
    var buffer = [CChar](repeating: 0, count: 512)
    _ = fg_describe_frame(pc, &buffer, buffer.count)
    let full = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    // Keep the image's file name, not its folder: lines stay short.
    if let slash = full.split(separator: " ").first?.lastIndex(of: "/") {
        return String(full[full.index(after: slash)...]).replacingSpaces()
    }
    return full.replacingSpaces()
}

extension String {
    func replacingSpaces() -> String { String(map { $0 == " " ? "_" : $0 }) }
}

func frames(_ fault: fg_fault) -> [UnsafeMutableRawPointer?] {
    withUnsafeBytes(of: fault.frames) { raw in
        Array(raw.bindMemory(to: UnsafeMutableRawPointer?.self).prefix(Int(fault.frame_count)))
    }
}

/// "yes" when the pc lies in the module's image.
func inImage(_ pc: UnsafeRawPointer?, _ module: Module) -> Bool {
    guard let pc, let base = probe_image_base(pc) else { return false }
    return base == probe_image_base(unsafeBitCast(module.handle, to: UnsafeRawPointer.self))
}

func residentKilobytes() -> Int {
    guard let file = fopen("/proc/self/status", "r") else { return -1 }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, Int32(line.count), file) != nil {
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if text.hasPrefix("VmRSS:") {
            return Int(text.dropFirst(6).filter { $0.isNumber }) ?? -1
        }
    }
    return -1
}

func install(timeoutMs: UInt32) {
    let status = fg_install(timeoutMs)
    if status != 0 { fail("fg_install = \(status) (\(String(cString: strerror(-status))))") }
}

/// LOGIN alice + JOIN lobby, so FAULT has a room to broadcast to.
func setUpAlice(_ module: Module) {
    world = FakeWorld()
    for line in ["LOGIN alice", "JOIN lobby"] {
        let outcome = call(module, line)
        if outcome.status != FG_OK { fail("\(module.name) \(line): \(statusName(outcome.status))") }
    }
    world.clearOutput()
}

// MARK: - Modes

/// Runs `FAULT kind` `runs` times; checks the side effects before the fault,
/// and that the next request works and still sees score = 999.
func faultKind(_ module: Module, _ language: String, _ kind: String, runs: Int) {
    setUpAlice(module)
    var statuses: [String: Int] = [:]
    var signals: [String: Int] = [:]
    var effects = 0, after = 0, pcInModule = 0, frameTotal = 0
    var first: fg_fault?
    var maxMicroseconds: UInt64 = 0
    var stops: Set<String> = []
    for _ in 0..<runs {
        world.score = 0
        world.clearOutput()
        let outcome = call(module, "FAULT \(kind)")
        statuses[statusName(outcome.status), default: 0] += 1
        maxMicroseconds = max(maxMicroseconds, outcome.nanoseconds / 1000)
        if outcome.status == FG_FAULT || outcome.status == FG_TIMEOUT {
            signals[String(cString: fg_signal_name(outcome.fault.signal)), default: 0] += 1
            if first == nil { first = outcome.fault }
            if inImage(outcome.fault.pc, module) { pcInModule += 1 }
            frameTotal += Int(outcome.fault.frame_count)
            stops.insert(stopName(outcome.fault.stop))
        }
        let broadcastOK = world.broadcasts.contains(">SAY alice before-fault")
        let sendOK = world.sends.contains(">SELF before-fault \(kind)")
        let replyOK = kind != "segv-after-reply" || world.replies == ["+OK"]
        if world.score == 999 && broadcastOK && sendOK && replyOK { effects += 1 }
        world.clearOutput()
        let next = call(module, "GET")
        if next.status == FG_OK && world.replies == ["+VALUE 999"] { after += 1 }
    }
    var line = "case=\(language)-\(kind) runs=\(runs)"
    line += " statuses=" + statuses.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ",")
    line += " signals=" + signals.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ",")
    line += " effects=\(effects) after=\(after) pc-in-module=\(pcInModule)"
    line += " stops=" + stops.sorted().joined(separator: ",")
    line += " max-us=\(maxMicroseconds)"
    if let first {
        line += " code=\(first.code) call=\(first.call) avg-frames=\(frameTotal / max(1, runs))"
        line += " elapsed-ms=\(first.elapsed_ms)"
        line += " top=\(describe(first.pc))"
        let list = frames(first)
        if list.count > 1 { line += " caller=\(describe(list[1].map { UnsafeRawPointer($0) - 1 }))" }
    }
    emit(line)
}

func kinds() {
    install(timeoutMs: 50)
    let c = Module("FaultyModule")
    let swift = Module("FaultySwiftModule")
    let migrate = Module("FaultyMigrateModule")
    let load = Module("FaultyLoadModule")
    for module in [c, swift, migrate, load] { module.register() }
    emit("probe asan=\(isASan ? "yes" : "no")")

    // Plain requests work through the trampoline.
    setUpAlice(c)
    _ = call(c, "SET 41")
    let get = call(c, "GET")
    emit("case=c-basic status=\(statusName(get.status)) result=\(get.result) reply=\((world.replies.last ?? "-").replacingSpaces()) identified=\(world.identified)")

    for kind in ["null", "trap", "abort", "div0", "recurse", "segv-after-reply"] {
        faultKind(c, "c", kind, runs: 100)
    }
    for kind in ["fatal", "index", "overflow"] {
        faultKind(swift, "swift", kind, runs: 100)
    }

    // The other exports.
    do {
        setUpAlice(c)
        let closed = c.symbol("hotswap_session_closed", as: hotswap_session_closed_fn.self)!
        var fault = fg_fault()
        world.score = 0
        let fine = fg_call_session_closed(closed, alice, table, &fault)
        world.score = 666
        let bad = fg_call_session_closed(closed, alice, table, &fault)
        emit("case=c-session-closed score0=\(statusName(fine)) score666=\(statusName(bad)) signal=\(String(cString: fg_signal_name(fault.signal))) call=\(fault.call)")
    }
    do {
        let fn = migrate.symbol("hotswap_migrate", as: hotswap_migrate_fn.self)!
        var migration = game_migration()
        migration.size = UInt32(MemoryLayout<game_migration>.size)
        migration.abi_version = UInt32(GAME_ABI_VERSION)
        migration.old_get_int = { _, _, _, _, _ in GAME_ERR_NOT_FOUND }
        migration.old_get_string = { _, _, _, _, _, _, _ in GAME_ERR_NOT_FOUND }
        var fault = fg_fault()
        var result: Int32 = -1000
        let status = fg_call_migrate(fn, &migration, alice, table, &result, &fault)
        emit("case=c-migrate status=\(statusName(status)) signal=\(String(cString: fg_signal_name(fault.signal))) call=\(fault.call) top=\(describe(fault.pc))")
    }
    do {
        let fn = load.symbol("hotswap_load", as: hotswap_load_fn.self)!
        var fault = fg_fault()
        var result: Int32 = -1000
        let status = "1.0.0".utf8CString.withUnsafeBufferPointer { version in
            version.withMemoryRebound(to: UInt8.self) { bytes in
                fg_call_load(fn, table, bytes.baseAddress, 5, &result, &fault)
            }
        }
        emit("case=c-load status=\(statusName(status)) signal=\(String(cString: fg_signal_name(fault.signal))) call=\(fault.call) top=\(describe(fault.pc))")
    }
    do {
        let fn = c.symbol("hotswap_describe", as: hotswap_describe_fn.self)!
        var describer = game_describer()
        describer.size = UInt32(MemoryLayout<game_describer>.size)
        describer.abi_version = UInt32(GAME_ABI_VERSION)
        describer.module = { _, _, _, _, _ in GAME_OK }
        describedFields = 0
        describer.field = { _, _, _, _, _, _, _, _, _ in
            defer { describedFields += 1 }
            return describedFields
        }
        var result: Int32 = -1000
        let status = fg_call_describe(fn, &describer, &result, nil)
        emit("case=c-describe status=\(statusName(status)) result=\(result)")
    }

    // Nesting is refused, and the outer call is unharmed.
    do {
        setUpAlice(c)
        world.getIntMode = .nested
        let outer = call(c, "GET")
        emit("case=nested outer=\(statusName(outer.status)) inner=\(statusName(world.nestedStatus)) reply=\((world.replies.last ?? "-").replacingSpaces())")
        world.getIntMode = .plain
    }
    // Another thread (as a worker that calls hotswap_describe): faults are
    // contained there too, stack overflow once the thread is attached.
    threadModule = c
    let error = probe_run_on_thread {
        let attached = fg_attach_thread()
        var line = "case=worker-thread attach=\(attached)"
        for kind in ["null", "recurse", "abort"] {
            world.score = 0
            let outcome = call(threadModule!, "FAULT \(kind)")
            line += " \(kind)=\(statusName(outcome.status)):\(String(cString: fg_signal_name(outcome.fault.signal)))"
        }
        let next = call(threadModule!, "GET")
        line += " after=\(statusName(next.status))"
        emit(line)
    }
    if error != 0 { fail("pthread_create: \(error)") }
    printCounters()
    emit("done")
}

nonisolated(unsafe) var threadModule: Module?

/// True in an AddressSanitizer build (make test-asan).
let isASan = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "__asan_init") != nil

/// A stack overflow on a thread without fg_attach_thread: the kernel cannot
/// run the handler and kills the process with SIGSEGV. (Under ASan every
/// thread has ASan's alternate stack, and the overflow is contained.)
func unattachedThreadOverflow() {
    install(timeoutMs: 1000)
    threadModule = Module("FaultyModule")
    emit("about-to-overflow-on-unattached-thread asan=\(isASan ? "yes" : "no")")
    _ = probe_run_on_thread {
        _ = call(threadModule!, "FAULT recurse")
        emit("survived")
    }
    exit(0)
}

func printCounters() {
    var counters = fg_counters()
    fg_get_counters(&counters)
    emit("counters faults=\(counters.faults) timeouts=\(counters.timeouts) deferred=\(counters.deferred) calls=\(counters.calls) last-signal=\(counters.last_signal) installed=\(counters.installed) timeout-ms=\(counters.call_timeout_ms)")
}

func timeouts() {
    install(timeoutMs: 50)
    let c = Module("FaultyModule")
    let swift = Module("FaultySwiftModule")
    for module in [c, swift] { module.register() }

    // Hangs.
    faultKind(c, "timeout", "loop", runs: 5)
    faultKind(c, "timeout", "loopcalls", runs: 5)
    world.getIntMode = .slow
    faultKind(c, "timeout-slowtable", "loopcalls", runs: 3)
    world.getIntMode = .plain
    faultKind(c, "timeout", "loopsleep", runs: 3)
    // With no image registered a timeout interrupts wherever the module is.
    for module in [c, swift] { module.unregister() }
    faultKind(c, "timeout-unregistered", "loop", runs: 3)
    faultKind(c, "timeout-unregistered", "loopsleep", runs: 3)
    for module in [c, swift] { module.register() }

    // One state-table call of 120 ms: with the timeout disabled (0) the
    // request completes; with 50 ms it is stopped when that call returns.
    world.getIntMode = .slow
    world.slowMicroseconds = 120_000
    fg_set_call_timeout_ms(0)
    let quiet = call(c, "GET")
    emit("case=timeout-disabled status=\(statusName(quiet.status)) ms=\(quiet.nanoseconds / 1_000_000) reply=\((world.replies.last ?? "-").replacingSpaces())")
    fg_set_call_timeout_ms(50)
    world.clearOutput()
    let stopped = call(c, "GET")
    emit("case=timeout-long-engine-call status=\(statusName(stopped.status)) ms=\(stopped.nanoseconds / 1_000_000) stop=\(stopName(stopped.fault.stop)) replies=\(world.replies.count)")
    world.getIntMode = .plain
    printCounters()
    emit("done")
}

func soak(_ count: Int) {
    install(timeoutMs: 1000)
    let c = Module("FaultyModule")
    let swift = Module("FaultySwiftModule")
    c.register()
    swift.register()
    let plan: [(Module, String)] = [
        (c, "null"), (c, "trap"), (c, "abort"), (c, "div0"), (c, "segv-after-reply"),
        (swift, "fatal"), (swift, "index"), (swift, "overflow"),
    ]
    func run(_ label: String, _ steps: [(Module, String)], _ n: Int) {
        setUpAlice(c)
        setUpAlice(swift)
        // Warm up: first-time allocations (caches, the unwinder) are not per fault.
        for i in 0..<200 { _ = call(steps[i % steps.count].0, "FAULT \(steps[i % steps.count].1)") }
        world.clearOutput()
        let before = residentKilobytes()
        var contained = 0
        let start = probe_now_ns()
        for i in 0..<n {
            let (module, kind) = steps[i % steps.count]
            world.clearOutput()
            let outcome = call(module, "FAULT \(kind)")
            if outcome.status == FG_FAULT { contained += 1 }
        }
        let seconds = Double(probe_now_ns() - start) / 1e9
        let after = residentKilobytes()
        let per = n > 0 ? Double((after - before) * 1024) / Double(n) : 0
        let check = call(c, "GET")
        emit("case=\(label) faults=\(n) contained=\(contained) rss-before-kb=\(before) rss-after-kb=\(after) bytes-per-fault=\(Int(per)) us-per-fault=\(Int(seconds * 1e6 / Double(max(n, 1)))) alive=\(check.status == FG_OK ? "yes" : "no")")
    }
    let only = Array(CommandLine.arguments.dropFirst(3))
    if only.isEmpty {
        run("soak-mixed", plan, count)
        run("soak-c", Array(plan.prefix(5)), count)
        run("soak-swift", Array(plan.suffix(3)), count)
    } else {
        // By name, also "recurse" (each one walks the whole 8 MB stack).
        let named = plan + [(c, "recurse")]
        for kind in only {
            let steps = named.filter { $0.1 == kind }
            if steps.isEmpty { fail("no fault kind \(kind)") }
            run("soak-\(kind)", steps, count)
        }
    }
    emit("done")
}

func engineFault() {
    install(timeoutMs: 1000)
    let c = Module("FaultyModule")
    fg_set_module("faulty", "1.0.0", String(repeating: "ab", count: 32))
    setUpAlice(c)
    world.getIntMode = .faultInEngine
    emit("about-to-fault-in-engine-section")
    let outcome = call(c, "GET")
    emit("survived status=\(statusName(outcome.status))")  // must not be reached
    exit(0)
}

func outsideFault() {
    install(timeoutMs: 1000)
    fg_set_module("faulty", "1.0.0", "none")
    emit("about-to-fault-outside-calls")
    probe_null_write()
    emit("survived")
    exit(0)
}

func bench() {
    install(timeoutMs: 1000)
    let c = Module("FaultyModule")
    var message = game_message(session: alice, line: nil, length: 0)
    let nop = Array("NOP".utf8)
    let iterations: UInt64 = 5_000_000
    func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
    func measure(_ fn: hotswap_handle_fn, _ line: [UInt8]?) -> (direct: Double, guarded: Double) {
        var direct: [Double] = [], guarded: [Double] = []
        let run = { (message: UnsafePointer<game_message>) in
            for _ in 0..<7 {
                direct.append(Double(probe_time_direct(fn, message, table, iterations)) / Double(iterations))
                guarded.append(Double(probe_time_guarded(fn, message, table, iterations)) / Double(iterations))
            }
        }
        if let line {
            line.withUnsafeBufferPointer { buffer in
                message = game_message(session: alice, line: buffer.baseAddress, length: buffer.count)
                run(&message)
            }
        } else {
            run(&message)
        }
        return (median(direct), median(guarded))
    }
    func format(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
    let noop = measure(probe_noop_handle, nil)
    emit("case=bench-noop iterations=\(iterations) runs=7 direct-ns=\(format(noop.direct)) guarded-ns=\(format(noop.guarded)) overhead-ns=\(format(noop.guarded - noop.direct))")
    let module = measure(c.handle, nop)
    emit("case=bench-module-nop iterations=\(iterations) runs=7 direct-ns=\(format(module.direct)) guarded-ns=\(format(module.guarded)) overhead-ns=\(format(module.guarded - module.direct))")
    var sections: [Double] = []
    for _ in 0..<7 { sections.append(Double(probe_time_sections(iterations)) / Double(iterations)) }
    emit("case=bench-engine-section iterations=\(iterations) runs=7 pair-ns=\(format(median(sections)))")
    // The same pair called from Swift, as the engine's thunks will.
    var swiftSections: [Double] = []
    for _ in 0..<7 {
        let start = probe_now_ns()
        for _ in 0..<iterations {
            fg_enter_engine()
            fg_leave_engine()
        }
        swiftSections.append(Double(probe_now_ns() - start) / Double(iterations))
    }
    emit("case=bench-engine-section-swift iterations=\(iterations) runs=7 pair-ns=\(format(median(swiftSections)))")
    emit("done")
}

let arguments = CommandLine.arguments
switch arguments.count > 1 ? arguments[1] : "" {
case "kinds": kinds()
case "timeouts": timeouts()
case "soak": soak(arguments.count > 2 ? Int(arguments[2]) ?? 10_000 : 10_000)
case "engine-fault": engineFault()
case "outside-fault": outsideFault()
case "unattached-thread-overflow": unattachedThreadOverflow()
case "install":
    let status = fg_install(100)
    emit("case=install result=\(status) asan=\(isASan ? "yes" : "no")")
case "bench": bench()
default:
    fail("usage: FaultGuardProbe kinds|soak [N]|engine-fault|outside-fault|install|bench")
}
