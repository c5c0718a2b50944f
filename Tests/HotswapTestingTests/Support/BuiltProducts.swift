import Foundation

/// A fixture module the package builds: products sit next to the test
/// bundle (.build/<triple>/debug), as ServerTests finds them.
func builtLibrary(_ name: String) -> String {
    URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        .appendingPathComponent("lib\(name).so").path
}
