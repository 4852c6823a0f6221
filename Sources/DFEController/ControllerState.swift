public import DFECore
import Synchronization

/// What the controller knows about itself, shared by the engine (writer) and the HTTP surface (reader).
public final class ControllerState: Sendable {
    /// One consistent copy of everything the HTTP surface shows.
    public struct Snapshot: Sendable {
        /// The first reconcile has finished (successfully or not).
        public var firstRunFinished = false
        /// Diagnostics of the last manifest or config load; empty when it was valid.
        public var loadErrors: [String] = []
        /// Why nothing could be loaded yet (e.g. the git source failed), if so.
        public var sourceError: String?
        /// The desired instances of the last good load.
        public var desired: [DesiredInstance] = []
        /// On a PostgreSQL state: standing by while another controller leads.
        public var standby: Standby?

        /// Not leading, with the holder of the state lease (`PID@HOST`) when known.
        public struct Standby: Sendable, Hashable {
            public var leader: String?
        }

        /// Ready: leading, the first reconcile has finished and the last load was valid.
        public var ready: Bool { standby == nil && firstRunFinished && loadErrors.isEmpty }

        /// Why the controller is not ready (empty when it is).
        public var notReadyReasons: [String] {
            var reasons: [String] = []
            if let sourceError { reasons.append("source: \(sourceError)") }
            if !loadErrors.isEmpty {
                reasons.append("manifests invalid (last good manifests kept):")
                reasons += loadErrors
            }
            if !firstRunFinished { reasons.append("the first reconcile has not finished yet") }
            return reasons
        }
    }

    private let state = Mutex(Snapshot())
    /// The controller's metrics (thread-safe on their own).
    public let metrics: ControllerMetrics
    /// Webhook notifications: `notifier.notify(.unhealthy, instance: ..., message: ...)` on a transition.
    public let notifier: Notifier

    public init(metrics: ControllerMetrics = ControllerMetrics(), notifier: Notifier? = nil) {
        self.metrics = metrics
        self.notifier = notifier ?? Notifier(metrics: metrics)
    }

    /// A copy of the current state.
    public var snapshot: Snapshot { state.withLock { $0 } }

    /// Changes the state under the lock.
    public func update(_ body: (inout Snapshot) -> Void) {
        let (ready, leading) = state.withLock { snapshot in
            body(&snapshot)
            return (snapshot.ready, snapshot.standby == nil)
        }
        metrics.setReady(ready)
        metrics.setLeader(leading)
    }
}
