import Crypto
import GameABI
import Glibc

/// A logic module mapped into the process and validated: its exports are
/// resolved, its ABI version accepted and its schema read. Nothing in the
/// engine's state has changed yet when one of these exists.
struct LoadedModule {
    /// The path the operator named.
    let sourcePath: String
    /// The private copy that was actually `dlopen`ed.
    let imagePath: String
    let name: String
    let version: String
    let abiVersion: UInt32
    let fields: [FieldSpec]
    /// Hex SHA-256 of the file as it was copied.
    let sha256: String
    let handle: hotswap_handle_fn
    let sessionClosed: hotswap_session_closed_fn?
    let migrate: hotswap_migrate_fn?
    let load: hotswap_load_fn?
}

/// Why a module was refused. The description is what the operator reads.
enum ModuleLoadError: Error, CustomStringConvertible {
    case notFound(path: String)
    case copyFailed(path: String, reason: String)
    case notALibrary(path: String, reason: String)
    case missingExport(path: String, symbol: String)
    case abiMismatch(path: String, module: UInt32, engine: UInt32)
    case describeFailed(path: String, reason: String)

    /// A failure that may be gone in a moment: the file is missing, being
    /// replaced or still being written. The watcher retries these only.
    var mayBeTransient: Bool {
        switch self {
        case .notFound, .copyFailed: true
        case .notALibrary(_, let reason): reason.hasPrefix("file is truncated") || reason.hasPrefix("file is shorter")
        default: false
        }
    }

    var description: String {
        switch self {
        case .notFound(let path):
            "module not found: \(path)"
        case .copyFailed(let path, let reason):
            "cannot copy module \(path): \(reason)"
        case .notALibrary(let path, let reason):
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
final class ModuleLoader {
    let privateDirectory: String
    private var loads = 0
    /// Images mapped into the process (and never unmapped).
    private(set) var imagesMapped = 0

    /// Creates the private directory the copies go to.
    init(temporaryRoot: String = ModuleLoader.defaultTemporaryRoot()) throws(ModuleLoadError) {
        var template = Array("\(temporaryRoot)/hotswap-modules-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw .copyFailed(path: temporaryRoot, reason: "mkdtemp: \(String(cString: strerror(errno)))")
        }
        privateDirectory = String(cString: made)
    }

    static func defaultTemporaryRoot() -> String {
        if let tmp = getenv("TMPDIR"), tmp.pointee != 0 { return String(cString: tmp) }
        return "/tmp"
    }

    /// Removes the private copies (the mapped images stay valid: on Linux a
    /// mapping keeps its file alive after unlink).
    func removePrivateCopies() {
        guard let directory = opendir(privateDirectory) else { return }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { unlink("\(privateDirectory)/\(name)") }
        }
        closedir(directory)
        rmdir(privateDirectory)
    }

    /// Copies, maps and validates the module at `path`.
    func load(path: String) throws(ModuleLoadError) -> LoadedModule {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw .notFound(path: path)
        }
        loads += 1
        let base = path.split(separator: "/").last.map(String.init) ?? "module.so"
        let imagePath = "\(privateDirectory)/\(loads)-\(base)"
        // The copy's name is needed only until dlopen: a mapping keeps the
        // file's pages, so repeated reloads do not fill the temporary
        // directory (/proc/PID/maps then shows the copy as "(deleted)").
        defer { unlink(imagePath) }
        let sha256 = try ModuleLoader.copyFile(from: path, to: imagePath)
        if let problem = ELFCheck.problem(path: imagePath) {
            throw .notALibrary(path: path, reason: problem)
        }
        guard let image = dlopen(imagePath, RTLD_NOW | RTLD_LOCAL) else {
            let reason = dlerror().map { String(cString: $0) } ?? "dlopen failed"
            throw .notALibrary(path: path, reason: reason)
        }
        imagesMapped += 1

        let abiVersionFn: hotswap_abi_version_fn = try resolve(image, "hotswap_abi_version", path)
        let abi = abiVersionFn()
        let engineABI = UInt32(GAME_ABI_VERSION)
        guard abi >> 16 == engineABI >> 16, abi & 0xFFFF <= engineABI & 0xFFFF else {
            throw .abiMismatch(path: path, module: abi, engine: engineABI)
        }
        let describe: hotswap_describe_fn = try resolve(image, "hotswap_describe", path)
        let handle: hotswap_handle_fn = try resolve(image, "hotswap_handle", path)
        let sessionClosed: hotswap_session_closed_fn? = resolveOptional(image, "hotswap_session_closed")
        let migrate: hotswap_migrate_fn? = resolveOptional(image, "hotswap_migrate")
        let load: hotswap_load_fn? = resolveOptional(image, "hotswap_load")

        let schema = SchemaCollector()
        let status = schema.collect(with: describe)
        if let problem = schema.problem ?? (status == GAME_OK ? nil : "hotswap_describe returned \(status)") {
            throw .describeFailed(path: path, reason: problem)
        }
        return LoadedModule(
            sourcePath: path, imagePath: imagePath,
            name: schema.name, version: schema.version, abiVersion: abi,
            fields: schema.fields, sha256: sha256, handle: handle, sessionClosed: sessionClosed,
            migrate: migrate, load: load)
    }

    private func resolve<F>(_ image: UnsafeMutableRawPointer, _ symbol: String, _ path: String) throws(ModuleLoadError) -> F {
        guard let function: F = resolveOptional(image, symbol) else {
            throw .missingExport(path: path, symbol: symbol)
        }
        return function
    }

    private func resolveOptional<F>(_ image: UnsafeMutableRawPointer, _ symbol: String) -> F? {
        guard let address = dlsym(image, symbol) else { return nil }
        return unsafeBitCast(address, to: F.self)
    }

    /// The SHA-256 of a file's current content (the watcher skips a reload
    /// when nothing changed).
    static func sha256(ofFile path: String) -> String? {
        try? copyFile(from: path, to: nil)
    }

    /// Copies the file (when `target` is given) and returns the SHA-256 of
    /// exactly the bytes read.
    @discardableResult
    private static func copyFile(from source: String, to target: String?) throws(ModuleLoadError) -> String {
        var hasher = SHA256()
        // O_NONBLOCK: a FIFO swapped in for the module must not block the
        // loop; fstat on the descriptor checks what was actually opened.
        let input = open(source, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard input >= 0 else { throw .copyFailed(path: source, reason: String(cString: strerror(errno))) }
        defer { close(input) }
        var opened = stat()
        guard fstat(input, &opened) == 0, (opened.st_mode & S_IFMT) == S_IFREG else {
            throw .copyFailed(path: source, reason: "not a regular file")
        }
        let output = target.map { open($0, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o500) } ?? -2
        guard output >= 0 || output == -2 else { throw .copyFailed(path: source, reason: String(cString: strerror(errno))) }
        defer { if output >= 0 { close(output) } }
        let chunk = 1 << 16
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let got = read(input, buffer, chunk)
            if got == 0 { break }
            if got < 0 {
                if errno == EINTR { continue }
                throw .copyFailed(path: source, reason: String(cString: strerror(errno)))
            }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(start: buffer, count: got))
            var done = output >= 0 ? 0 : got
            while done < got {
                let put = write(output, buffer + done, got - done)
                if put < 0 {
                    if errno == EINTR { continue }
                    throw .copyFailed(path: source, reason: String(cString: strerror(errno)))
                }
                done += put
            }
        }
        return hasher.finalize().map { byte in
            let digits = Array("0123456789abcdef".utf8)
            return String(decoding: [digits[Int(byte >> 4)], digits[Int(byte & 0xF)]], as: UTF8.self)
        }.joined()
    }
}
