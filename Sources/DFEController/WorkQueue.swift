/// One unit of work taken from the queue: a full reconcile or a set of instances.
public struct Work: Sendable, Hashable {
    /// Reconcile everything (start, resync, config change, new commit).
    public var full: Bool
    /// The instances to reconcile when not `full`.
    public var names: Set<String>
    /// Why the work was queued, de-duplicated, for the logs.
    public var reasons: Set<String>
    /// Instances to reconcile at once, ignoring their backoff (asked for through the API).
    public var urgent: Set<String>

    public init(full: Bool, names: Set<String>, reasons: Set<String>, urgent: Set<String> = []) {
        self.full = full
        self.names = names
        self.reasons = reasons
        self.urgent = urgent
    }
}

/// A de-duplicating work queue drained by a single worker.
///
/// Pending work is a set of instance names plus a "full" flag: bursts coalesce, an instance queued twice is
/// reconciled once, and since one worker takes everything at once no instance is ever reconciled twice
/// concurrently. Work queued while a run is in flight waits for the next run.
public actor WorkQueue {
    private var full = false
    private var names: Set<String> = []
    private var reasons: Set<String> = []
    private var urgent: Set<String> = []
    private var finished = false
    private var waiter: CheckedContinuation<Work?, Never>?

    public init() {}

    /// Queues a full reconcile.
    public func enqueueFull(reason: String) {
        guard !finished else { return }
        full = true
        reasons.insert(reason)
        wake()
    }

    /// Queues some instances (`ignoringBackoff`: retried at once even when failed); an empty set queues nothing.
    public func enqueue(_ instances: Set<String>, reason: String, ignoringBackoff: Bool = false) {
        guard !finished, !instances.isEmpty else { return }
        names.formUnion(instances)
        if ignoringBackoff { urgent.formUnion(instances) }
        reasons.insert(reason)
        wake()
    }

    /// Pending units: the number of queued instances, or 1 for a queued full reconcile.
    public var depth: Int { full ? 1 : names.count }

    /// Whether `finish()` was called.
    public var isFinished: Bool { finished }

    /// Stops the queue: pending work is dropped and `next()` returns nil.
    public func finish() {
        finished = true
        full = false
        names = []
        reasons = []
        urgent = []
        if let waiter {
            self.waiter = nil
            waiter.resume(returning: nil)
        }
    }

    /// Waits for work and takes all of it; nil once the queue is finished. Only one worker may wait.
    public func next() async -> Work? {
        if let work = take() { return work }
        if finished { return nil }
        precondition(waiter == nil, "WorkQueue supports a single worker")
        return await withCheckedContinuation { continuation in
            waiter = continuation
        }
    }

    private func take() -> Work? {
        guard !finished, full || !names.isEmpty else { return nil }
        let work = Work(full: full, names: full ? [] : names, reasons: reasons, urgent: urgent)
        full = false
        names = []
        reasons = []
        urgent = []
        return work
    }

    private func wake() {
        guard let waiter, let work = take() else { return }
        self.waiter = nil
        waiter.resume(returning: work)
    }
}
