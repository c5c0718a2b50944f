import Glibc

/// The names in a directory, without `.` and `..`; nil when it cannot be
/// read. (`readdir`'s `d_name` is a fixed C array: one place turns it into
/// a String.)
func directoryEntries(_ path: String) -> [String]? {
    guard let listing = opendir(path) else { return nil }
    defer { closedir(listing) }
    var names: [String] = []
    while let entry = readdir(listing) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}
