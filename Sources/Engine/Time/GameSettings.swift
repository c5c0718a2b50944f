/// The operator's `--game-setting key=value` pairs, read by modules through
/// the state table's `setting` (ABI 1.3), so that a game's durations and
/// sizes change without a rebuild. Fixed for the life of the process: a
/// restart or an engine upgrade (which runs with its own arguments) changes
/// them, a RELOAD does not.
///
/// A short list searched in order: a lookup compares bytes and allocates
/// nothing, so a module may read a setting in any call.
struct GameSettings: Equatable, Sendable {
    private(set) var pairs: [(key: [UInt8], value: [UInt8])] = []

    init() {}

    /// Parses `key=value` arguments; the reason when one is malformed: a key
    /// is 1 to GAME_MAX_SETTING_KEY bytes of [a-z0-9_], a value up to 1024
    /// printable ASCII bytes (it may be shown in STATUS), and a key given
    /// twice is refused rather than silently taking one of them.
    init(parsing arguments: [String]) throws(SettingError) {
        for argument in arguments {
            guard let equals = argument.firstIndex(of: "=") else { throw SettingError(argument, "expected key=value") }
            let key = Array(argument[..<equals].utf8)
            let value = Array(argument[argument.index(after: equals)...].utf8)
            guard !key.isEmpty, key.count <= 64,
                key.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F })
            else { throw SettingError(argument, "a key is 1 to 64 characters of a-z, 0-9 and _") }
            guard value.count <= 1024, value.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E }) else {
                throw SettingError(argument, "a value is up to 1024 printable characters without spaces")
            }
            guard !pairs.contains(where: { $0.key == key }) else { throw SettingError(argument, "given twice") }
            pairs.append((key, value))
        }
    }

    /// The value set for `key`, if any.
    func value(of key: UnsafeRawBufferPointer) -> [UInt8]? {
        for pair in pairs where pair.key.count == key.count {
            if pair.key.withUnsafeBytes({ $0.elementsEqual(key) }) { return pair.value }
        }
        return nil
    }

    var isEmpty: Bool { pairs.isEmpty }

    /// `key=value,key=value` for STATUS (values have no spaces or commas
    /// that matter: they are shown as given).
    var summary: String {
        pairs.map { String(decoding: $0.key, as: UTF8.self) + "=" + String(decoding: $0.value, as: UTF8.self) }
            .joined(separator: ",")
    }

    static func == (a: GameSettings, b: GameSettings) -> Bool {
        a.pairs.count == b.pairs.count && zip(a.pairs, b.pairs).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }
}

/// A `--game-setting` that cannot be used, and why.
struct SettingError: Error, CustomStringConvertible {
    let argument: String
    let reason: String
    init(_ argument: String, _ reason: String) {
        self.argument = argument
        self.reason = reason
    }
    var description: String { "--game-setting '\(argument)': \(reason)" }
}
