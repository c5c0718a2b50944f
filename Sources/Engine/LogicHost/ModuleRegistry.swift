import FaultGuard

/// The modules this process has mapped, beside the one serving
/// (`ModuleCall.module`): the one before the last swap (ROLLBACK's), every
/// one swapped in, the last one a swap refused, the versions the fault
/// policy took out, and the last file a load read. It tells the fault
/// guard which images are module code: the serving and the previous one,
/// as those are the ones that can run.
///
/// Images are never unmapped (the Swift runtime keeps pointers into every
/// image it has seen); an engine upgrade sheds all but these two.
struct ModuleRegistry {
    /// The module that served before the last swap, kept for ROLLBACK.
    var previous: LoadedModule?
    /// Every module swapped in, oldest first (all still mapped, except those
    /// from before an engine upgrade: only the current and previous are).
    var history: [ModuleHistoryEntry]
    /// The last candidate a swap refused (its image is unregistered from the
    /// guard once it is neither current nor previous).
    var lastRefused: LoadedModule?
    /// Versions (by SHA-256) the fault policy took out: never put back by it.
    var condemned: Set<String> = []
    /// The SHA-256 of the file the last load copied (loaded or refused), so
    /// `--watch` can skip a file it has already acted on.
    var lastLoadSHA256: String?

    init(serving: LoadedModule) { history = [ModuleHistoryEntry(serving)] }

    /// A swap committed: `serving` replaced `from`.
    mutating func swapped(from: LoadedModule, to serving: LoadedModule, isRollback: Bool) {
        previous = from
        if !isRollback { history.append(ModuleHistoryEntry(serving)) }
    }

    /// Tells the guard which module is serving (for crash reports) and
    /// which images are module code (where a hang may be interrupted).
    func identifyToGuard(serving: LoadedModule) {
        fg_set_module(serving.name, serving.version, serving.sha256)
        for entry in history + [lastRefused].compactMap({ $0.map(ModuleHistoryEntry.init) })
            where entry.imagePath != serving.imagePath && entry.imagePath != previous?.imagePath
        {
            if let handle = entry.handle { fg_unregister_module_image(unsafeBitCast(handle, to: UnsafeRawPointer.self)) }
        }
        _ = fg_register_module_image(unsafeBitCast(serving.handle, to: UnsafeRawPointer.self))
        if let previous { _ = fg_register_module_image(unsafeBitCast(previous.handle, to: UnsafeRawPointer.self)) }
    }
}
