import Glibc

/// Where a path an operator names really leads, and whether that is inside
/// the one directory files of its kind may come from: modules (`RELOAD`,
/// `--modules-dir`) and engines (`UPGRADE`, `--engines-dir`). Written once:
/// symlinks and `..` are resolved by `realpath`, so neither can lead out.
enum PathConfinement {
    enum Outcome: Equatable {
        /// The real path, inside the directory.
        case inside(String)
        /// Nothing there (`full`: the path as named, made absolute).
        case notFound(full: String)
        /// It resolves to `resolved`, outside the directory.
        case outside(full: String, resolved: String)
    }

    /// Resolves `path` (relative: a file in `directory`).
    static func resolve(_ path: String, in directory: String) -> Outcome {
        let full = path.hasPrefix("/") ? path : "\(directory)/\(path)"
        guard let real = realPath(full) else { return .notFound(full: full) }
        let prefix = directory.hasSuffix("/") ? directory : directory + "/"
        guard !directory.isEmpty, real.hasPrefix(prefix) else { return .outside(full: full, resolved: real) }
        return .inside(real)
    }

    /// `realpath(3)`, or nil when the path does not resolve.
    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
