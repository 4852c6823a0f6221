import DFEReconciler
import Foundation
import Logging
import ServiceLifecycle

/// The single worker that drains the work queue, and the timers that feed it (resync, backoff wake-ups).
///
/// On graceful shutdown it stops taking work and lets the run in flight finish (which releases the lease), then
/// returns.
struct ReconcileService: Service {
    let engine: Engine
    let queue: WorkQueue
    let interval: Duration
    let clock: any WallClock
    let logger: Logger
    /// Without a git source the manifests are read at start; with one, the first adopted commit starts things.
    let loadAtStart: Bool
    /// How often the timers look at the clock.
    var tick: Duration = .milliseconds(100)

    func run() async {
        if loadAtStart { await engine.reload(reason: "start", configChanged: true) }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await timers() }
            while let work = await queue.next() {
                await engine.run(work)
            }
            group.cancelAll()
        }
    }

    /// Queues a full resync every `interval` and the instances whose backoff has ended; finishes the queue on
    /// graceful shutdown.
    func timers() async {
        var nextResync = ContinuousClock.now + interval
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            try? await Task.sleep(for: tick)
            if ContinuousClock.now >= nextResync {
                nextResync = ContinuousClock.now + interval
                // Re-reading is cheap and catches changes a watcher might have missed.
                await engine.reload(reason: "resync", configChanged: false)
                await queue.enqueueFull(reason: "resync")
            }
            let due = await engine.takeDueBackoff(now: clock.now())
            if !due.isEmpty { await queue.enqueue(due, reason: "backoff ended") }
        }
        logger.info("shutting down: finishing the run in flight")
        await queue.finish()
    }
}
