import DFEState
import Foundation
import Synchronization

/// The single-writer lease on the state, held for the length of a run and renewed while it runs.
final class Lease: Sendable {
    let store: any StateStoring
    let clock: any WallClock
    let ttl: Duration
    let pid = getpid()
    let host = Lease.hostName()
    private let lost = Mutex(false)

    init(store: any StateStoring, clock: any WallClock, ttl: Duration) {
        self.store = store
        self.clock = clock
        self.ttl = ttl
    }

    /// This machine's host name.
    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Whether a process exists on this host.
    static func isAlive(_ pid: Int32) -> Bool {
        kill(pid, 0) == 0 || errno == EPERM
    }

    /// Takes the lease; with `wait`, polls until it is free (or the task is cancelled), telling `waiting` whom
    /// it waits for whenever the holder changes.
    func acquire(wait: Bool, waiting: (@Sendable (String) -> Void)? = nil) async throws {
        var announced: String?
        while true {
            do {
                try await store.acquireLease(pid: pid, host: host, ttl: ttl, at: clock.now(), isAlive: Lease.isAlive)
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
                try await store.renewLease(pid: pid, host: host, ttl: ttl, at: clock.now())
            } catch StateError.leaseLost {
                // The store now refuses new steps; in-flight ones finish and are journaled.
                lost.withLock { $0 = true }
            } catch {
                // A transient failure (busy database): try again at the next renewal.
            }
        }
    }

    /// Whether renewing failed because another process took the lease.
    var isLost: Bool { lost.withLock { $0 } }

    /// Releases the lease (best effort).
    func release() async {
        try? store.releaseLease(pid: pid, host: host)
    }
}
