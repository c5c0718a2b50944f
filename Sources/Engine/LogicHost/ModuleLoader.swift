import Crypto
import FaultGuard
import GameABI
import Glibc

/// A logic module mapped into the process and validated: its exports are
/// resolved, its ABI version accepted and its schema read. Nothing in the
/// engine's state has changed yet when one of these exists.
///
/// `@unchecked Sendable`: every member is immutable, and the function
/// pointers are plain addresses in an image that is never unmapped, so a
/// value made on a worker thread may be handed to the loop thread.
struct LoadedModule: @unchecked Sendable {
    /// The path the operator named.
    var sourcePath: String
    /// The private copy that was actually `dlopen`ed.
    let imagePath: String
    let name: String
    let version: String
    let fields: [FieldSpec]
    /// Hex SHA-256 of the file as it was copied.
    let sha256: String
    let handle: hotswap_handle_fn
    let sessionClosed: hotswap_session_closed_fn?
    let migrate: hotswap_migrate_fn?
    let load: hotswap_load_fn?
    /// ABI 1.3: what handles a timer, and a room's tick (see `Time/`).
    let timer: hotswap_timer_fn?
    let tick: hotswap_tick_fn?
    /// ABI 1.4: what turns a login's verdict into its reply (see `Auth/`).
    let auth: hotswap_auth_fn?
    /// ABI 1.4: told when a session goes away (its connection dropped) and
    /// comes back (a RESUME). Optional: without them a room hears nothing.
    var sessionAway: hotswap_session_away_fn? = nil
    var sessionBack: hotswap_session_back_fn? = nil
    /// ABI 1.5: undoes this module's `hotswap_migrate` when ROLLBACK takes
    /// it out (it writes the previous module's schema from its own values).
    /// Without it, a rollback past a field it retyped or migrated is refused.
    var migrateDown: hotswap_migrate_down_fn? = nil
    /// The private copy, kept open (its name is gone): an engine upgrade
    /// hands it to the next engine, which maps it again. Nil when it could
    /// not be kept (the upgrade then says so).
    let file: ModuleImageFile?
}

/// An open descriptor on a module's private copy, closed when no module
/// value refers to it any more: only the current, previous and last
/// refused modules hold one, so the number of open copies stays small.
final class ModuleImageFile: @unchecked Sendable {
    let descriptor: Int32

    init(descriptor: Int32) { self.descriptor = descriptor }

    deinit { close(descriptor) }
}

/// A module that was swapped in at some point, as `MODULES` lists it.
/// History keeps no file open: only what it shows, and for the modules
/// mapped in this process, the image (so the guard can be told which
/// images stop being module code that may run).
struct ModuleHistoryEntry: @unchecked Sendable {
    let name: String
    let version: String
    let sha256: String
    /// The private copy it was mapped from; nil for an entry from before an
    /// engine upgrade that is no longer mapped.
    let imagePath: String?
    let handle: hotswap_handle_fn?

    init(_ module: LoadedModule) {
        name = module.name
        version = module.version
        sha256 = module.sha256
        imagePath = module.imagePath
        handle = module.handle
    }

    init(name: String, version: String, sha256: String) {
        self.name = name
        self.version = version
        self.sha256 = sha256
        imagePath = nil
        handle = nil
    }
}

/// Why a module was refused. The description is what the operator reads.
enum ModuleLoadError: Error, Sendable, CustomStringConvertible {
    case notFound(path: String)
    case tooLarge(path: String, bytes: UInt64, limit: Int)
    case copyFailed(path: String, reason: String)
    case notELF(path: String, problem: ELFProblem)
    case dlopenFailed(path: String, reason: String)
    case missingExport(path: String, symbol: String)
    case abiMismatch(path: String, module: UInt32, engine: UInt32)
    case describeFailed(path: String, reason: String)
    /// Loading it in a probe process failed (see `ModuleProbe`).
    case probeFailed(path: String, refusal: ModuleProbe.Refusal)

    /// A failure that may be gone in a moment: the file is missing, being
    /// replaced or still being written. The watcher retries these only.
    var isTransient: Bool {
        switch self {
        case .notFound, .copyFailed: true
        case .notELF(_, let problem): problem.isTransient
        case .probeFailed(_, let refusal): refusal.isTransient
        default: false
        }
    }

    var description: String {
        switch self {
        case .notFound(let path):
            "module not found: \(path)"
        case .tooLarge(let path, let bytes, let limit):
            "module \(path) is \(bytes) bytes, over --max-module-bytes \(limit): not copied"
        case .probeFailed(let path, let refusal):
            "cannot load module \(path): \(refusal)"
        case .copyFailed(let path, let reason):
            "cannot copy module \(path): \(reason)"
        case .notELF(let path, let problem):
            "cannot load module \(path): \(problem)"
        case .dlopenFailed(let path, let reason):
            "cannot load module \(path): \(reason)"
        case .missingExport(let path, let symbol):
            "module \(path) does not export \(symbol)"
        case .abiMismatch(let path, let module, let engine):
            "module \(path) was built for ABI \(module >> 16).\(module & 0xFFFF), "
                + "this engine speaks ABI \(engine >> 16).\(engine & 0xFFFF)"
        case .describeFailed(let path, let reason):
            "module \(path) has a bad schema: \(reason)"
        }
    }
}

/// One load to run, possibly on a worker thread: only values, so it can
/// cross threads (`Sendable`), and nothing shared with the loop.
struct ModuleLoadRequest: Sendable {
    /// The file to load, as the operator named it (already confined).
    let path: String
    /// Where the private copy goes (unique per load).
    let imagePath: String
    /// When the file's SHA-256 equals this, stop before mapping anything:
    /// the file holds the module that is already serving.
    let unlessSHA256: String?
    /// A resumed engine loads its modules without a probe (the same bytes
    /// the previous engine mapped, their SHA-256 checked, while every
    /// player is held), then sets the probe for the reloads to come.
    var limits: ModuleLoadLimits
}

/// How far a load trusts a candidate file (`--max-module-bytes`,
/// `--probe-timeout`).
struct ModuleLoadLimits: Sendable {
    /// Files larger than this are refused before anything is copied.
    var maxBytes = 512 << 20
    /// Milliseconds the probe process may take (`ModuleProbe`); 0 maps the
    /// candidate without a probe.
    var probeTimeoutMilliseconds = 5000
    /// The `gameserver` the probe runs; nil: this process's executable
    /// (which an engine embedded in a test runner is not).
    var probeExecutable: String?
}

/// What came of a load request.
struct ModuleLoadResult: Sendable {
    enum Outcome: Sendable {
        case loaded(LoadedModule)
        /// The file's content is `unlessSHA256`: nothing was mapped.
        case unchanged(sha256: String)
        case failed(ModuleLoadError)
    }
    let outcome: Outcome
    /// The SHA-256 of the bytes copied, when the copy got that far.
    let sha256: String?
    /// Whether an image was mapped (also when validation then refused it:
    /// images are never unmapped).
    let mapped: Bool
    let nanoseconds: UInt64
}

/// Loads logic modules from disk.
///
/// Each load copies the file to a fresh path in a private directory before
/// `dlopen`: the dynamic linker caches images by path (and inode), so opening
/// the build output again would return the image already mapped instead of
/// the new build. `RTLD_LOCAL` keeps the module's symbols out of the global
/// namespace, so two versions never resolve to each other's code; `RTLD_NOW`
/// makes a missing symbol fail here, at load, instead of mid-game.
///
/// Images are never `dlclose`d: the Swift runtime keeps pointers into every
/// image it has seen (type metadata, conformance caches), so unmapping one
/// would leave those dangling.
///
/// The loader itself lives on the loop thread (it numbers the loads and
/// counts the images); the work of a load is `ModuleLoadRequest.perform`,
/// which shares nothing and runs on a worker.
final class ModuleLoader {
    /// Where the copies go (`hotswap-modules-XXXXXX` in the temporary root):
    /// one per process image. An engine upgrade removes it before the exec
    /// (the next program makes its own) and makes a new one if the exec
    /// failed.
    private(set) var privateDirectory: String
    private let temporaryRoot: String
    private var loads = 0
    /// Images mapped into the process (and never unmapped).
    private(set) var imagesMapped = 0
    /// A resumed engine loads its modules without a probe (the same bytes
    /// the previous engine mapped, their SHA-256 checked, while every
    /// player is held), then sets the probe for the reloads to come.
    var limits: ModuleLoadLimits

    /// The lock on `privateDirectory/owner.lock` that says a live process
    /// owns the directory (see `removeStaleDirectories`).
    private var ownerLock: Int32 = -1

    /// Creates the private directory the copies go to.
    init(temporaryRoot: String = ModuleLoader.defaultTemporaryRoot(), limits: ModuleLoadLimits = ModuleLoadLimits())
        throws(ModuleLoadError)
    {
        self.temporaryRoot = temporaryRoot
        self.limits = limits
        (privateDirectory, ownerLock) = try ModuleLoader.makeDirectory(in: temporaryRoot)
    }

    private static let directoryPrefix = "hotswap-modules-"
    private static let stagingPrefix = ".hotswap-new-"
    private static let ownerLockName = "owner.lock"

    /// Made under a name no sweep looks at, locked, then renamed: another
    /// server's `removeStaleDirectories` never sees it unlocked.
    private static func makeDirectory(in root: String) throws(ModuleLoadError) -> (String, Int32) {
        func failed(_ call: String) -> ModuleLoadError {
            .copyFailed(path: root, reason: "\(call): \(String(cString: strerror(errno)))")
        }
        var template = Array("\(root)/\(stagingPrefix)XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else { throw failed("mkdtemp") }
        let staging = String(cString: made)
        let lock = open("\(staging)/\(ownerLockName)", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lock >= 0, flock(lock, LOCK_EX | LOCK_NB) == 0 else {
            let error = failed("lock")
            if lock >= 0 { close(lock) }
            removeContents(of: staging)
            rmdir(staging)
            throw error
        }
        let directory = "\(root)/\(directoryPrefix)\(staging.suffix(6))"
        guard rename(staging, directory) == 0 else {
            let error = failed("rename")
            close(lock)
            removeContents(of: staging)
            rmdir(staging)
            throw error
        }
        return (directory, lock)
    }

    /// Removes the private directories that processes which died without
    /// cleaning up (kill -9, a crash, a power cut) left in `root`, and
    /// returns their paths.
    ///
    /// Why a lock and not a pid in the name: the kernel drops a dead
    /// process's `flock`s, whatever killed it, and a lock is seen the same
    /// from every pid namespace sharing the directory (containers sharing
    /// /tmp), where a pid would name another process or none. A directory
    /// without the lock file (made by an older engine, or another program)
    /// is left alone: its owner cannot be told.
    static func removeStaleDirectories(in root: String = defaultTemporaryRoot()) -> [String] {
        // Also those a server died making (between mkdtemp and rename).
        let names = (directoryEntries(root) ?? []).filter { $0.hasPrefix(directoryPrefix) || $0.hasPrefix(stagingPrefix) }
        var removed: [String] = []
        for name in names {
            let directory = "\(root)/\(name)"
            var info = stat()
            // Ours only, and a real directory (never a link someone planted).
            guard lstat(directory, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR, info.st_uid == geteuid() else { continue }
            let lock = open("\(directory)/\(ownerLockName)", O_RDWR | O_CLOEXEC | O_NOFOLLOW)
            guard lock >= 0 else { continue }
            defer { close(lock) }
            guard flock(lock, LOCK_EX | LOCK_NB) == 0 else { continue }  // its owner lives
            removeContents(of: directory)
            if rmdir(directory) == 0 { removed.append(directory) }
        }
        return removed
    }

    /// Unlinks every entry of a flat directory.
    private static func removeContents(of directory: String) {
        for name in directoryEntries(directory) ?? [] { unlink("\(directory)/\(name)") }
    }

    static func defaultTemporaryRoot() -> String {
        if let tmp = getenv("TMPDIR"), tmp.pointee != 0 { return String(cString: tmp) }
        return "/tmp"
    }

    /// Removes the private directory and anything still in it (the mapped
    /// images stay valid: on Linux a mapping keeps its file alive after
    /// unlink, and every copy is unlinked right after its `dlopen`; only a
    /// load stuck on its worker can have left one).
    func removePrivateCopies() {
        ModuleLoader.removeContents(of: privateDirectory)
        rmdir(privateDirectory)
        if ownerLock >= 0 { close(ownerLock) }
        ownerLock = -1
    }

    /// A new private directory, after `removePrivateCopies` (an upgrade
    /// whose exec failed goes on loading modules).
    func recreatePrivateDirectory() throws(ModuleLoadError) {
        (privateDirectory, ownerLock) = try ModuleLoader.makeDirectory(in: temporaryRoot)
    }

    /// The next load of `path`, numbered so its private copy is unique and
    /// named after `name` (default: the file's name).
    func request(path: String, named name: String? = nil, unlessSHA256: String? = nil) -> ModuleLoadRequest {
        loads += 1
        let base = name ?? path.split(separator: "/").last.map(String.init) ?? "module.so"
        return ModuleLoadRequest(path: path, imagePath: "\(privateDirectory)/\(loads)-\(base)", unlessSHA256: unlessSHA256,
                                 limits: limits)
    }

    /// Counts what a finished request mapped (on the loop thread).
    func finished(_ result: ModuleLoadResult) {
        if result.mapped { imagesMapped += 1 }
    }

    /// Loads on the calling thread (start-up): request, perform, count.
    func load(path: String, named name: String? = nil) throws(ModuleLoadError) -> LoadedModule {
        let result = request(path: path, named: name).perform()
        finished(result)
        switch result.outcome {
        case .loaded(let module): return module
        case .failed(let error): throw error
        case .unchanged: throw .copyFailed(path: path, reason: "unchanged")  // not asked for: no unlessSHA256
        }
    }
}

extension ModuleLoadRequest {
    /// Copies, hashes, checks, maps and validates the module. Runs on any
    /// thread: it touches only the files and the dynamic linker.
    func perform() -> ModuleLoadResult {
        // The describe call below is guarded: give this (worker) thread its
        // own alternate signal stack first, so a stack overflow in module
        // code here is contained too (a no-op after the first time, and
        // before the guard is installed).
        _ = fg_attach_thread()
        let started = monotonicNanoseconds()
        var mapped = false
        var sha256: String?
        let outcome: ModuleLoadResult.Outcome
        do throws(ModuleLoadError) {
            outcome = try run(mapped: &mapped, sha256: &sha256)
        } catch {
            outcome = .failed(error)
        }
        return ModuleLoadResult(outcome: outcome, sha256: sha256, mapped: mapped,
                                nanoseconds: monotonicNanoseconds() - started)
    }

    private func run(mapped: inout Bool, sha256 copied: inout String?) throws(ModuleLoadError) -> ModuleLoadResult.Outcome {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw .notFound(path: path)
        }
        // The copy's name is needed only until dlopen: a mapping keeps the
        // file's pages, so repeated reloads do not fill the temporary
        // directory (/proc/PID/maps then shows the copy as "(deleted)").
        defer { unlink(imagePath) }
        let sha256 = try copyFile()
        copied = sha256
        if sha256 == unlessSHA256 { return .unchanged(sha256: sha256) }
        // Again on the copy: the file may have changed while it was read.
        if let problem = ELFCheck.problem(path: imagePath) {
            throw .notELF(path: path, problem: problem)
        }
        if limits.probeTimeoutMilliseconds > 0,
           let refusal = ModuleProbe.check(path: imagePath, timeoutMilliseconds: limits.probeTimeoutMilliseconds,
                                           executable: limits.probeExecutable)
        {
            if case .dlopenFailed(let reason) = refusal { throw .dlopenFailed(path: path, reason: reason) }
            throw .probeFailed(path: path, refusal: refusal)
        }
        guard let image = dlopen(imagePath, RTLD_NOW | RTLD_LOCAL) else {
            throw .dlopenFailed(path: path, reason: dlerror().map { String(cString: $0) } ?? "dlopen failed")
        }
        mapped = true

        let abiVersionFn: hotswap_abi_version_fn = try resolve(image, "hotswap_abi_version")
        // Module code like describe: a crash in it refuses the reload.
        var abi: UInt32 = 0
        var abiFault = fg_fault()
        let abiOutcome = fg_call_abi_version(abiVersionFn, &abi, &abiFault)
        guard abiOutcome == FG_OK else {
            let cause = abiOutcome == FG_TIMEOUT ? "timeout" : String(cString: fg_signal_name(abiFault.signal))
            throw .describeFailed(path: path, reason: "hotswap_abi_version crashed (\(cause))")
        }
        let engineABI = UInt32(GAME_ABI_VERSION)
        guard abi >> 16 == engineABI >> 16, abi & 0xFFFF <= engineABI & 0xFFFF else {
            throw .abiMismatch(path: path, module: abi, engine: engineABI)
        }
        let describe: hotswap_describe_fn = try resolve(image, "hotswap_describe")
        let handle: hotswap_handle_fn = try resolve(image, "hotswap_handle")

        let schema = SchemaCollector()
        let (status, fault) = schema.collect(with: describe)
        if let fault { throw .describeFailed(path: path, reason: "hotswap_describe crashed (\(fault))") }
        if let problem = schema.problem ?? (status == GAME_OK ? nil : "hotswap_describe returned \(status)") {
            throw .describeFailed(path: path, reason: problem)
        }
        // Opened before the deferred unlink: the descriptor keeps the copy.
        let kept = open(imagePath, O_RDONLY | O_CLOEXEC)
        return .loaded(LoadedModule(
            sourcePath: path, imagePath: imagePath, name: schema.name, version: schema.version,
            fields: schema.fields, sha256: sha256, handle: handle,
            sessionClosed: resolveOptional(image, "hotswap_session_closed"),
            migrate: resolveOptional(image, "hotswap_migrate"),
            load: resolveOptional(image, "hotswap_load"),
            timer: resolveOptional(image, "hotswap_timer"),
            tick: resolveOptional(image, "hotswap_tick"),
            auth: resolveOptional(image, "hotswap_auth"),
            sessionAway: resolveOptional(image, "hotswap_session_away"),
            sessionBack: resolveOptional(image, "hotswap_session_back"),
            migrateDown: resolveOptional(image, "hotswap_migrate_down"),
            file: kept >= 0 ? ModuleImageFile(descriptor: kept) : nil))
    }

    private func resolve<F>(_ image: UnsafeMutableRawPointer, _ symbol: String) throws(ModuleLoadError) -> F {
        guard let function: F = resolveOptional(image, symbol) else {
            throw .missingExport(path: path, symbol: symbol)
        }
        return function
    }

    private func resolveOptional<F>(_ image: UnsafeMutableRawPointer, _ symbol: String) -> F? {
        guard let address = dlsym(image, symbol) else { return nil }
        return unsafeBitCast(address, to: F.self)
    }

    /// Checks the file (size, ELF headers, processor), then copies it and
    /// returns the SHA-256 of exactly the bytes read.
    private func copyFile() throws(ModuleLoadError) -> String {
        let (source, target) = (path, imagePath)
        var hasher = SHA256()
        // O_NONBLOCK: a FIFO swapped in for the module must not block; fstat
        // on the descriptor checks what was actually opened.
        let input = open(source, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard input >= 0 else { throw .copyFailed(path: source, reason: String(cString: strerror(errno))) }
        defer { close(input) }
        var opened = stat()
        guard fstat(input, &opened) == 0, (opened.st_mode & S_IFMT) == S_IFREG else {
            throw .copyFailed(path: source, reason: "not a regular file")
        }
        // Before a byte is copied: a 6 GB file, a text file or a module for
        // another processor is refused here, not after filling $TMPDIR.
        if opened.st_size > limits.maxBytes {
            throw .tooLarge(path: source, bytes: UInt64(opened.st_size), limit: limits.maxBytes)
        }
        if let problem = ELFCheck.problem(descriptor: input) { throw .notELF(path: source, problem: problem) }
        let output = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o500)
        guard output >= 0 else { throw .copyFailed(path: source, reason: String(cString: strerror(errno))) }
        defer { close(output) }
        let chunk = 1 << 16
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        var total = 0
        while true {
            let got = read(input, buffer, chunk)
            if got == 0 { break }
            total += max(got, 0)
            if total > limits.maxBytes {
                throw .tooLarge(path: source, bytes: UInt64(total), limit: limits.maxBytes)  // it grew while read
            }
            if got < 0 {
                if errno == EINTR { continue }
                throw .copyFailed(path: source, reason: String(cString: strerror(errno)))
            }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(start: buffer, count: got))
            var done = 0
            while done < got {
                let put = write(output, buffer + done, got - done)
                if put < 0 {
                    if errno == EINTR { continue }
                    throw .copyFailed(path: source, reason: String(cString: strerror(errno)))
                }
                done += put
            }
        }
        let digits = Array("0123456789abcdef".utf8)
        var hex: [UInt8] = []
        for byte in hasher.finalize() { hex += [digits[Int(byte >> 4)], digits[Int(byte & 0xF)]] }
        return String(decoding: hex, as: UTF8.self)
    }
}

/// Monotonic nanoseconds (CLOCK_MONOTONIC), callable from any thread.
func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}
