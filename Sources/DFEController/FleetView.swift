public import DFECore
import DFEProvision
public import DFEReconciler
public import DFEState
public import Foundation

/// One applied step, kept in memory for an instance page's recent history.
public struct StepRecord: Sendable, Hashable {
    public var resource: ResourceKind
    public var action: Action
    public var reason: String
    /// nil when the step succeeded.
    public var error: String?
    public var at: Date
    public var duration: Duration

    public init(
        resource: ResourceKind, action: Action, reason: String, error: String?, at: Date, duration: Duration
    ) {
        self.resource = resource
        self.action = action
        self.reason = reason
        self.error = error
        self.at = at
        self.duration = duration
    }
}

/// The controller's in-memory view of the fleet, from which every HTTP answer about instances comes.
///
/// The leader feeds it after each reconcile run (the recorded state it reads anyway for backoff) and whenever
/// the manifests change; a standby calls `refresh(from:desired:)` on an interval. Requests never read the state:
/// they take the latest `Snapshot`, whose JSON and counts are computed once per change.
public actor FleetView {
    /// One consistent view of the fleet, computed once per change and shared by all requests.
    public struct Snapshot: Sendable {
        /// Every instance, sorted by name (the status view of `dfe status`).
        public var instances: [InstanceStatus]
        /// Index into `instances` by name.
        public var index: [String: Int]
        /// `{"instances": [...]}`, encoded once.
        public var json: Data
        /// Instances per phase.
        public var phases: [Phase: Int]
        /// Instances per health status (`healthy`, `unhealthy`, `unknown`).
        public var health: [String: Int]
        /// Increases with every change (caches of rendered pages key on it).
        public var version: Int
        /// When the view was last refreshed.
        public var refreshedAt: Date?

        static let empty = Snapshot(
            instances: [], index: [:], json: StatusView.json([]), phases: [:], health: [:], version: 0,
            refreshedAt: nil)

        /// The instance named `name`, if known.
        public func instance(_ name: String) -> InstanceStatus? { index[name].map { instances[$0] } }
    }

    /// How many steps per instance the view remembers.
    public static let historyLimit = 20

    private var recorded: [String: RecordedInstance] = [:]
    private var desired: [DesiredInstance]?
    private var history: [String: [StepRecord]] = [:]
    private var version = 0
    private var current = Snapshot.empty
    private let metrics: ControllerMetrics?
    private let now: @Sendable () -> Date

    /// A view that, when `metrics` is given, keeps `dfe_instances{phase}` in step with it.
    public init(metrics: ControllerMetrics? = nil, now: @escaping @Sendable () -> Date = { Date() }) {
        self.metrics = metrics
        self.now = now
    }

    /// The latest view.
    public var snapshot: Snapshot { current }

    /// Replaces the recorded state and, when given, the desired instances (nil keeps the last known ones).
    public func refresh(recorded: [String: RecordedInstance], desired: [DesiredInstance]? = nil) {
        self.recorded = recorded
        if let desired { self.desired = desired }
        rebuild()
    }

    /// Replaces the desired instances only (the manifests changed; the recorded state did not).
    public func refresh(desired: [DesiredInstance]) {
        self.desired = desired
        rebuild()
    }

    /// Reads the recorded state from `backend` (off the cooperative pool, writing nothing) and refreshes from
    /// it: what a standby controller calls on an interval.
    public func refresh(from backend: any StateBackend, desired: [DesiredInstance]? = nil) async throws {
        let recorded = try await offloaded { try backend.snapshot(withFields: false) }
        refresh(recorded: recorded, desired: desired)
    }

    /// Remembers one finished step of an instance (the newest `historyLimit` are kept).
    public func recordStep(_ step: StepRecord, instance: String) {
        var steps = history[instance, default: []]
        steps.append(step)
        if steps.count > Self.historyLimit { steps.removeFirst(steps.count - Self.historyLimit) }
        history[instance] = steps
    }

    /// The remembered steps of an instance, newest first.
    public func history(_ instance: String) -> [StepRecord] { (history[instance] ?? []).reversed() }

    private func rebuild() {
        let instances = StatusView.instances(recorded: recorded, desired: desired)
        var index: [String: Int] = [:]
        var phases: [Phase: Int] = [:]
        var health: [String: Int] = [:]
        for (position, instance) in instances.enumerated() {
            index[instance.name] = position
            if let phase = Phase(rawValue: instance.phase) { phases[phase, default: 0] += 1 }
            health[Self.healthStatus(of: instance), default: 0] += 1
        }
        let names = Set(index.keys)
        history = history.filter { names.contains($0.key) }
        version += 1
        current = Snapshot(
            instances: instances, index: index, json: StatusView.json(instances), phases: phases, health: health,
            version: version, refreshedAt: now())
        metrics?.setPhases(phases)
        metrics?.setHealth(health)
    }

    /// The health status shown for an instance (`unknown` until probes report one).
    static func healthStatus(of instance: InstanceStatus) -> String { "unknown" }
}
