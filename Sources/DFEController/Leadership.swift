import DFEReconciler
import DFEState
import Foundation
import Logging
import ServiceLifecycle

/// Leader election for several controllers on one PostgreSQL state: the lease row is the leadership.
///
/// The leader holds the lease for as long as it runs (renewing it) and hands its store to the engine, whose runs
/// are fenced by the lease's epoch; a standby polls until the lease is free (released on SIGTERM, its holder gone
/// on this host, or 15 s without renewal) and then leads. On graceful shutdown this service stops last but for the
/// HTTP server: the run in flight has finished when it releases the lease.
struct LeaderElection: Service {
    let workspace: Workspace
    let engine: Engine
    let state: ControllerState
    let clock: any WallClock
    let logger: Logger
    var ttl: Duration = .seconds(15)
    var renewal: Duration = .seconds(2)
    var poll: Duration = .milliseconds(500)
    /// How often a standby re-reads the state for its fleet view (page, API, metrics).
    var viewRefresh: Duration = .seconds(5)

    let me = LeaseIdentity.current()

    func run() async {
        state.update { $0.standby = .init(leader: nil) }
        var store: (any StateStoring)?
        var leading = false
        var viewRefreshed: ContinuousClock.Instant?
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let current = try store ?? workspace.stateBackend().open()
                store = current
                if leading {
                    try await current.renewLease(ttl: ttl, at: clock.now())
                } else {
                    try await current.acquireLease(me, ttl: ttl, at: clock.now())
                    leading = true
                    logger.notice("leading: holding the state lease", metadata: ["holder": "\(me)"])
                    state.update { $0.standby = nil }
                    await engine.lead(current)
                }
            } catch StateError.leaseHeld(let holder) {
                if state.snapshot.standby?.leader != holder.description {
                    logger.info("standby: another controller leads", metadata: ["leader": "\(holder)"])
                }
                state.update { $0.standby = .init(leader: holder.description) }
                if viewRefreshed.map({ ContinuousClock.now - $0 >= viewRefresh }) ?? true {
                    viewRefreshed = ContinuousClock.now
                    await engine.refreshStandbyView()
                }
            } catch {
                if leading {
                    logger.error("lost the state lease; standing by", metadata: ["error": "\(error)"])
                    await engine.standBy()
                    state.update { $0.standby = .init(leader: nil) }
                    leading = false
                    // A fenced store stays refused: open a fresh one for the next acquisition.
                    store = nil
                } else {
                    logger.warning("state unavailable; retrying", metadata: ["error": "\(error)"])
                }
            }
            let pause = leading ? renewal : poll
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: pause) }
        }
        await engine.standBy()
        if leading, let store {
            try? store.releaseLease()
            logger.notice("released the state lease", metadata: ["holder": "\(me)"])
        }
        store?.close()
    }
}
