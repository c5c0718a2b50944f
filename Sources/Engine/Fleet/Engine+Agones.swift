/// What the engine tells Agones (`AgonesLifecycle`), worded from its parts.
extension Engine {
    /// Once every port listens (the start-up's step 8, for a first engine
    /// and a resumed one alike). Nothing without `AGONES_SDK_HTTP_PORT`.
    func startAgones() {
        guard let lifecycle = AgonesLifecycle(loop: loop, healthIntervalMilliseconds: limits.agonesHealthInterval,
                                              logger: logger)
        else { return }
        agones = lifecycle
        lifecycle.start(versions: agonesVersions)
    }

    /// The labels and annotations: `engine` (1.1.0+eaaee0c814a3) and
    /// `module` (gems 1.0.1).
    var agonesVersions: [(key: String, exact: String)] {
        [("engine", EngineIdentity.version), ("module", "\(host.module.name) \(host.module.version)")]
    }
}
