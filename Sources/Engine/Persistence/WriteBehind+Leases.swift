import CLibUV
import UVKit

/// An upgraded engine on a shared database: the leases the process holds
/// are read back on a worker before the first flush (a flush fences every
/// write by the epochs, so none may start before they are known). Not in
/// the upgrade's hold: a database that is slow or down then delays the
/// flushes, counted in `db_errors`, instead of holding every player or
/// refusing the upgrade. Retried on every tick until it works.
extension WriteBehind {
    /// True while the leases are not read back yet; one read at a time.
    func adoptLeasesIfDue() {
        guard adoptingLeases, !adoptionRunning, let shared = storage as? any SharedPlayerStorage else { return }
        adoptionRunning = true
        let box = LeaseAdoption(storage: shared)
        let status = UVWork.submit(on: loop, box, work: { $0.run() }, after: { [unowned self] box in
            adoptionRunning = false
            switch box.outcome {
            case .success(let held):
                guard adoptingLeases else { return }
                adoptingLeases = false
                world.leases.adopting = false
                world.leases.adoptionFailing = false
                world.adoptLeases(held)
                onLeasesSettled()
                logger.notice("database \(storage.location): read back the leases this process holds (\(held.count)); flushes start")
            case .failure(let error):
                countFailure(error)
                // Logins are refused until it works, as a claim would be,
                // not left waiting.
                world.leases.adoptionFailing = true
                onLeasesSettled()
            case nil:
                break
            }
        })
        if status != 0 { adoptionRunning = false }
    }

    /// At exit, with the loop stopped: read them here, so the final flush
    /// can write (a failure leaves the records unwritten, as any failed
    /// final flush does).
    func adoptLeasesNow() throws(StorageError) {
        guard adoptingLeases, let shared = storage as? any SharedPlayerStorage else { return }
        world.adoptLeases(try shared.heldLeases())
        adoptingLeases = false
        world.leases.adopting = false
    }
}

/// One read of the held leases on a worker.
final class LeaseAdoption: @unchecked Sendable {
    let storage: any SharedPlayerStorage
    /// Written on the worker, read on the loop after it.
    var outcome: Result<[[UInt8]: Int64], StorageError>?

    init(storage: any SharedPlayerStorage) { self.storage = storage }

    func run() {
        do {
            outcome = .success(try storage.heldLeases())
        } catch {
            outcome = .failure(error)
        }
    }
}
