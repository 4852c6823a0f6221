public import DFECore
import Foundation

/// A problem with one instance (or one of its resources) during a run.
public struct InstanceError: Sendable, Hashable, Codable {
    public var instance: String
    public var resource: ResourceKind?
    public var message: String

    public init(instance: String, resource: ResourceKind?, message: String) {
        self.instance = instance
        self.resource = resource
        self.message = message
    }
}

/// What a reconcile (or a dry run) planned and, when applying, what came of it.
public struct ReconcileReport: Sendable {
    public var dryRun: Bool
    public var plan: Plan
    /// Instances that failed, with their errors.
    public var errors: [InstanceError]
    /// Things worth telling the operator that are not errors (protected orphans, recovered steps).
    public var warnings: [String]
    /// Applied changes that succeeded.
    public var applied: [ResourceChange]
    public var revision: String?
    public var duration: Duration
    /// Each planned instance's binding (dry runs), for a saved plan (`plan --out`).
    public var bindings: [InstanceBinding] = []
    /// Instances of a saved plan left alone because re-planning them gave other changes, with why.
    public var stale: [StaleInstance] = []

    public init(
        dryRun: Bool, plan: Plan, errors: [InstanceError] = [], warnings: [String] = [],
        applied: [ResourceChange] = [], revision: String? = nil, duration: Duration = .zero
    ) {
        self.dryRun = dryRun
        self.plan = plan
        self.errors = errors
        self.warnings = warnings
        self.applied = applied
        self.revision = revision
        self.duration = duration
    }

    /// The summary counted from the plan, with failures from observing and applying.
    public var summary: PlanSummary {
        var summary = plan.summary
        let failedDuringApply = Set(errors.map(\.instance))
        let alreadyCounted = Set(plan.instances.filter { !$0.failures.isEmpty }.map(\.name))
        summary.failed += failedDuringApply.subtracting(alreadyCounted).count
        return summary
    }

    /// The counts every output shows (text and JSON alike): for a dry run the plan's; for an applying run what
    /// was done: a change counts as created, updated, deleted or retained only when it succeeded, and a failed
    /// one only as failed.
    public var counts: PlanSummary {
        var counts = summary
        guard !dryRun else { return counts }
        counts.create = 0
        counts.update = 0
        counts.delete = 0
        counts.retain = 0
        for change in applied { counts.count(change.action) }
        return counts
    }

    /// Suspended instances whose manifest differs from what was applied, sorted.
    public var held: [String] { plan.instances.filter { $0.held > 0 }.map(\.name).sorted() }
}

/// An instance of a saved plan that was not applied: re-planning it gave something else than the plan.
public struct StaleInstance: Sendable, Hashable {
    public var name: String
    public var reason: String

    public init(name: String, reason: String) {
        self.name = name
        self.reason = reason
    }
}

/// Progress of a run, for the command layer's output and the controller's logs.
public enum ReconcileEvent: Sendable {
    /// An applying run planned this many steps (sent once, before the first step).
    case planned(steps: Int)
    /// The state lease is held by `holder` (`PID@HOST`) and the run waits for it (`--wait`); sent when the holder
    /// is first seen and whenever it changes.
    case waitingForLease(holder: String)
    case stepStarted(ResourceChange)
    case stepFinished(ResourceChange, duration: Duration, error: String?)
    case warning(String)
}

/// Receives progress events; must be cheap and thread-safe.
public typealias ReconcileObserver = @Sendable (ReconcileEvent) -> Void

/// Typed failures of a whole run (per-instance failures are in the report instead).
public enum ReconcileError: Error, Sendable, CustomStringConvertible {
    /// Manifests or config are invalid: nothing was touched.
    case invalid(ValidationFailure)
    /// The state could not be opened, or its lease is held.
    case state(any Error)
    /// `--only` or `--selector` cannot be used: nothing was touched.
    case selection(SelectionError)
    /// The plan prunes more than the guards allow: nothing was touched.
    case pruneRefused(PruneRefusal)
    /// A saved plan does not fit the current inputs: nothing was touched.
    case planRefused(String)

    public var description: String {
        switch self {
        case .invalid(let failure): failure.description
        case .state(let error): "\(error)"
        case .selection(let error): error.description
        case .pruneRefused(let refusal): refusal.description
        case .planRefused(let why): why
        }
    }
}
