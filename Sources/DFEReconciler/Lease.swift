import DFEState
import Foundation
import Synchronization

/// The single-writer lease on the state, held for the length of a run and renewed while it runs.
final class Lease: Sendable {
    let store: any StateStoring
    let clock: any WallClock
    let ttl: Duration
    let me = LeaseIdentity.current()
    private let lost = Mutex(false)

    init(store: any StateStoring, clock: any WallClock, ttl: Duration) {
        self.store = store
        self.clock = clock
        self.ttl = ttl
    }

    /// This machine's host name.
    static func hostName() -> String { LeaseIdentity.hostName() }

    /// Takes the lease; with `wait`, polls until it is free (or the task is cancelled), telling `waiting` whom
    /// it waits for whenever the holder changes.
    func acquire(wait: Bool, waiting: (@Sendable (String) -> Void)? = nil) async throws {
        var announced: String?
        while true {
            do {
                try await store.acquireLease(me, ttl: ttl, at: clock.now())
                return
            } catch StateError.leaseHeld(let holder) {
                guard wait else { throw StateError.leaseHeld(holder) }
                if announced != holder.description {
                    announced = holder.description
                    waiting?(holder.description)
                }
                try await Task.sleep(for: .milliseconds(500))
            }
        }
    }

    /// Renews the lease until cancelled.
    func keepRenewing(every interval: Duration) async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: interval)
            } catch {
                return
            }
            do {
                try await store.renewLease(ttl: ttl, at: clock.now())
            } catch StateError.leaseLost {
                // The store now refuses every write: no new step starts, nothing more is recorded.
                lost.withLock { $0 = true }
                return
            } catch {
                // A transient failure (busy database): try again at the next renewal.
            }
        }
    }

    /// Whether renewing failed because another process took the lease.
    var isLost: Bool { lost.withLock { $0 } || store.hasLostLease }

    /// Releases the lease (best effort; only if this run's epoch still holds it).
    func release() async {
        try? store.releaseLease()
    }
}
