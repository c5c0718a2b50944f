import Glibc

/// The names in a directory, without `.` and `..`; nil when it cannot be
/// read.
func directoryEntries(_ path: String) -> [String]? {
    guard let listing = opendir(path) else { return nil }
    defer { closedir(listing) }
    var names: [String] = []
    while let entry = readdir(listing) {
        let name = direntName(entry)
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

/// The name in a `readdir` entry, read up to its NUL in place.
///
/// Why not `withUnsafeBytes(of: entry.pointee.d_name)`: that copies the
/// whole 256-byte array, but glibc packs entries by their `d_reclen`, so
/// the last one in its buffer can end well before 256 bytes of name: the
/// copy reads past the allocation (AddressSanitizer: heap-buffer-overflow).
func direntName(_ entry: UnsafeMutablePointer<dirent>) -> String {
    let offset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!
    return String(cString: (UnsafeRawPointer(entry) + offset).assumingMemoryBound(to: CChar.self))
}
