/// Whether the module a server starts with can take over what the database
/// holds.
///
/// A reload migrates a field whose type changes by calling the new
/// module's `hotswap_migrate` with the old values. At start there is no
/// old module to read them through, so a start whose module declares a
/// persistent field with another type than the module that last served the
/// file (recorded in `fields.declared`) would bind the new type's column
/// as it is (defaults, or values from before an earlier rollback) and
/// leave every player's real value behind in the old type. That start is
/// refused instead, with what to do: start the module that wrote the file
/// and RELOAD the new one, which runs its migration for every player.
enum StartupSchemaCheck {
    static func problem(module: LoadedModule, stored: StoredSnapshot, database: String) -> String? {
        for spec in module.fields where spec.kind.isPersistent {
            guard let serving = stored.declared.first(where: { $0.kind == spec.kind && $0.name == spec.name }),
                serving.type != spec.type
            else { continue }
            return "database \(database) holds \(spec.kind).\(spec.name) as \(serving.type) (as the module that last served it declared), "
                + "but module \(module.name) \(module.version) declares it \(spec.type); a migration runs only on a reload: "
                + "start with the module that wrote the database, then RELOAD this one"
        }
        return nil
    }
}
