import DFECore
import DFEProvision
import DFEReconciler
import DFEState
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Decides what to reconcile and runs the reconciler, one run at a time.
///
/// Keeps the last good inputs: an invalid load is logged and reported but never replaces them, so a bad commit
/// never half-applies and the next good change is picked up.
actor Engine {
    let base: Workspace
    let registry: DriverRegistry
    let environment: [String: String]
    let clock: any WallClock
    let logger: Logger
    let reconcilerLogger: Logger
    let queue: WorkQueue
    let state: ControllerState
    /// The in-memory view the HTTP surface answers from; fed after every run and every manifest change.
    let fleet: FleetView
    let prune: Bool?
    let parallelism: Int?
    /// Manifests come from the git source: the revision is the adopted commit, not the work tree's HEAD.
    let gitMode: Bool
    /// `--allow-other-user`.
    let allowOtherUser: Bool

    /// The manifests directory of the last good load (a git checkout moves it).
    private(set) var manifests: URL
    private(set) var inputs: LoadedInputs?
    /// The adopted commit (git mode).
    private(set) var commit: String?
    /// Failed instances waiting for their backoff to end, with when it ends.
    private(set) var backoff: [String: Date] = [:]
    /// Drift reported (not repaired) so far, so each change of it is logged once.
    private(set) var drift = DriftLog()
    /// The recorded state after the last run (read once before the first), for notification transitions.
    private var lastRecorded: [String: RecordedInstance]?

    /// Several controllers share the (PostgreSQL) state: only the leader, holding `leaderStore`'s lease, runs.
    var elects = false
    /// The store whose lease the election holds while this controller leads.
    private(set) var leaderStore: (any StateStoring)?

    /// Starts leading with the store whose lease the election took, and queues a full reconcile.
    func lead(_ store: any StateStoring) async {
        leaderStore = store
        await queue.enqueueFull(reason: "leading")
    }

    /// Stops leading: runs are skipped until `lead` again.
    func standBy() { leaderStore = nil }

    /// A standby's fleet view: re-reads the recorded state (written by the leader); failures are logged.
    func refreshStandbyView() async {
        do {
            try await fleet.refresh(from: workspace().stateBackend(), desired: inputs?.desired)
        } catch {
            logger.warning("standby: cannot read the state for the fleet view", metadata: ["error": "\(error)"])
        }
    }

    /// Makes runs wait for leadership (set once, before the services start).
    func electLeader() { elects = true }

    init(
        workspace: Workspace, registry: DriverRegistry, environment: [String: String], clock: any WallClock,
        logger: Logger, reconcilerLogger: Logger, queue: WorkQueue, state: ControllerState, fleet: FleetView,
        prune: Bool?, parallelism: Int?, gitMode: Bool, allowOtherUser: Bool = false
    ) {
        self.fleet = fleet
        self.allowOtherUser = allowOtherUser
        self.base = workspace
        self.registry = registry
        self.environment = environment
        self.clock = clock
        self.logger = logger
        self.reconcilerLogger = reconcilerLogger
        self.queue = queue
        self.state = state
        self.prune = prune
        self.parallelism = parallelism
        self.gitMode = gitMode
        self.manifests = workspace.manifests
    }

    /// The workspace with the current manifests directory.
    func workspace(manifests: URL? = nil) -> Workspace {
        var workspace = base
        workspace.manifests = manifests ?? self.manifests
        return workspace
    }

    // MARK: Loading

    /// Re-reads config and manifests; when valid, queues what changed (everything on a config change).
    func reload(reason: String, configChanged: Bool) async {
        // With a git source there is nothing to read until the first commit is adopted.
        if gitMode && commit == nil { return }
        guard let loaded = load(workspace(), reason: reason) else { return }
        await adopt(loaded, reason: reason, full: configChanged)
    }

    /// Adopts a checked-out commit if its manifests are valid; returns whether it was adopted.
    func adoptCommit(_ sha: String, manifests directory: URL) async -> Bool {
        let reason = "commit \(sha.prefix(12))"
        guard let loaded = load(workspace(manifests: directory), reason: reason) else {
            logger.error("commit not applied: manifests invalid", metadata: ["revision": "\(sha)"])
            return false
        }
        manifests = directory
        commit = sha
        await adopt(loaded, reason: reason, full: true)
        return true
    }

    /// Loads inputs; on failure logs every diagnostic, counts it and marks the controller not ready.
    private func load(_ workspace: Workspace, reason: String) -> LoadedInputs? {
        do {
            return try InputLoader.load(workspace, registry: registry, environment: environment)
        } catch {
            let configPath = workspace.display(workspace.config)
            for diagnostic in error.diagnostics {
                let inConfig = diagnostic.location.path.hasPrefix(configPath + "/")
                logger.error(
                    inConfig ? "invalid config" : "invalid manifest",
                    metadata: [
                        "location": "\(diagnostic.location)", "error": "\(diagnostic.message)", "trigger": "\(reason)",
                    ])
            }
            logger.error(
                "manifests invalid; keeping the last good ones",
                metadata: ["errors": "\(error.diagnostics.count)", "trigger": "\(reason)"])
            state.update { $0.loadErrors = error.diagnostics.map(\.description) }
            state.metrics.recordManifestLoadError()
            return nil
        }
    }

    /// Makes `loaded` the current inputs and queues the instances whose manifests changed.
    private func adopt(_ loaded: LoadedInputs, reason: String, full: Bool) async {
        let previous = inputs
        inputs = loaded
        let wasInvalid = !state.snapshot.loadErrors.isEmpty
        state.update {
            $0.loadErrors = []
            $0.desired = loaded.desired
        }
        await fleet.refresh(desired: loaded.desired)
        await state.notifier.configure(loaded.config.settings.notifications)
        if wasInvalid { logger.notice("manifests valid again", metadata: ["trigger": "\(reason)"]) }
        guard let previous, !full, previous.config == loaded.config else {
            await queue.enqueueFull(reason: reason)
            return
        }
        let changed = Self.changedInstances(old: previous.desired, new: loaded.desired)
        if !changed.isEmpty {
            logger.info(
                "manifests changed",
                metadata: ["trigger": "\(reason)", "instances": "\(changed.sorted().joined(separator: ","))"])
        }
        await queue.enqueue(changed, reason: reason)
    }

    /// Names whose desired spec differs (added, changed or removed) between two loads.
    static func changedInstances(old: [DesiredInstance], new: [DesiredInstance]) -> Set<String> {
        let before = Dictionary(old.map { ($0.name, $0.specHash) }, uniquingKeysWith: { first, _ in first })
        let after = Dictionary(new.map { ($0.name, $0.specHash) }, uniquingKeysWith: { first, _ in first })
        var changed = Set<String>()
        for (name, hash) in after where before[name] != hash { changed.insert(name) }
        for name in before.keys where after[name] == nil { changed.insert(name) }
        return changed
    }

    // MARK: Running

    /// Reconciles one unit of work: urgent instances first (ignoring their backoff), then the rest.
    func run(_ work: Work) async {
        guard !work.urgent.isEmpty else { return await runOnce(work, honourBackoff: true) }
        await runOnce(Work(full: false, names: work.urgent, reasons: work.reasons), honourBackoff: false)
        var rest = work
        rest.urgent = []
        rest.names.subtract(work.urgent)
        if rest.full || !rest.names.isEmpty { await runOnce(rest, honourBackoff: true) }
    }

    /// One reconcile run over the current inputs; records metrics and schedules backoff wake-ups.
    func runOnce(_ work: Work, honourBackoff: Bool) async {
        guard let inputs else {
            logger.notice("nothing reconciled: no valid manifests loaded yet")
            return
        }
        if elects && leaderStore == nil {
            logger.debug("standby: not reconciling", metadata: ["scope": "\(work.full ? "all" : "some")"])
            return
        }
        let workspace = workspace()
        let revision = gitMode ? commit : GitRevision.of(workspace.manifests)
        var options = ReconcileOptions(
            prune: prune, only: work.full ? nil : work.names, parallelism: parallelism, wait: true,
            honourBackoff: honourBackoff, revision: revision)
        options.onlyMustExist = false
        // On SIGTERM/SIGINT: finish the instances in flight, start no others (the next start picks them up).
        options.shouldStop = { Task.isShuttingDownGracefully }
        options.allowOtherUser = allowOtherUser
        let scope = work.full ? "all" : work.names.sorted().joined(separator: ",")
        let trigger = work.reasons.sorted().joined(separator: ",")
        logger.info(
            "reconcile started",
            metadata: ["trigger": "\(trigger)", "scope": "\(scope)", "revision": "\(revision ?? "none")"])
        var reconciler = Reconciler(
            workspace: workspace, registry: registry, environment: environment, clock: clock, logger: reconcilerLogger)
        reconciler.heldStore = leaderStore
        if lastRecorded == nil { lastRecorded = try? workspace.stateBackend().snapshot(withFields: false) }
        let started = ContinuousClock.now
        var success = false
        let steps = Mutex<[(String, StepRecord)]>([])
        do {
            let metrics = state.metrics
            let clock = clock
            let report = try await reconciler.run(options, inputs: inputs) { event in
                if case .stepFinished(let change, let duration, let error) = event {
                    metrics.recordStep(resource: change.resource, action: change.action, success: error == nil)
                    let step = StepRecord(
                        resource: change.resource, action: change.action, reason: change.reason, error: error,
                        at: clock.now(), duration: duration)
                    steps.withLock { $0.append((change.instance, step)) }
                }
            }
            let summary = report.summary
            for error in report.errors {
                logger.error(
                    "instance failed",
                    metadata: [
                        "instance": "\(error.instance)", "resource": "\(error.resource?.rawValue ?? "-")",
                        "error": "\(error.message)",
                    ])
            }
            for warning in report.warnings { logger.warning("\(warning)") }
            let (changedDrift, clearedDrift) = drift.update(with: report.plan)
            for (name, reports) in changedDrift {
                logger.warning(
                    "drift detected (driftPolicy: Report; not repaired)",
                    metadata: [
                        "instance": "\(name)",
                        "resources": "\(reports.map(\.resource.rawValue).joined(separator: ","))",
                        "detail": "\(reports.map { "\($0.resource.rawValue): \($0.detail)" }.joined(separator: "; "))",
                    ])
            }
            for name in clearedDrift { logger.notice("drift gone", metadata: ["instance": "\(name)"]) }
            // A run cut short by a graceful shutdown left instances undone: it did not succeed.
            let interrupted = options.shouldStop?() ?? false
            success = report.errors.isEmpty && !interrupted
            logger.info(
                "reconcile finished",
                metadata: [
                    "trigger": "\(trigger)", "scope": "\(scope)",
                    "result": "\(interrupted ? "interrupted" : success ? "success" : "error")",
                    "duration": "\(DurationText.format(ContinuousClock.now - started))",
                    "applied": "\(report.applied.count)", "create": "\(summary.create)", "update": "\(summary.update)",
                    "delete": "\(summary.delete)", "unchanged": "\(summary.unchanged)",
                    "orphaned": "\(summary.orphaned)", "failed": "\(summary.failed)",
                ])
        } catch {
            if case .state(let cause) = error, StateError.isLeaseLost(cause) {
                logger.warning(
                    "lease lost: stepping down; the next run waits for the lease and re-acquires it",
                    metadata: ["trigger": "\(trigger)"])
            }
            logger.error(
                "reconcile failed",
                metadata: [
                    "trigger": "\(trigger)", "error": "\(error)",
                    "duration": "\(DurationText.format(ContinuousClock.now - started))",
                ])
        }
        let elapsed = ContinuousClock.now - started
        let read = try? workspace.stateBackend().snapshot(withFields: false)
        let recorded = read ?? [:]
        backoff = BackoffSchedule.pending(recorded: recorded, desired: inputs.desired, now: clock.now())
        for (instance, step) in steps.withLock({ $0 }) { await fleet.recordStep(step, instance: instance) }
        await fleet.refresh(recorded: recorded, desired: inputs.desired)
        // An unreadable state is no transition (it would look as if everything was pruned).
        let transitions = read.map { Transitions.between(old: lastRecorded ?? [:], new: $0) } ?? []
        for (event, record) in transitions {
            await state.notifier.notify(
                event, instance: record.name, phase: event == .pruned ? nil : record.phase.rawValue,
                message: event == .pruned ? "deleted: its manifest is gone" : record.lastError,
                revision: record.revision ?? revision)
        }
        if let read { lastRecorded = read }
        if let next = backoff.values.min() {
            logger.info(
                "backoff wake-up scheduled",
                metadata: [
                    "at": "\(ISO8601DateFormatter().string(from: next))",
                    "instances": "\(backoff.keys.sorted().joined(separator: ","))",
                ])
        }
        state.metrics.recordRun(duration: elapsed, success: success)
        if success, let revision { state.metrics.setLastAppliedRevision(revision) }
        state.update { $0.firstRunFinished = true }
    }

    /// Removes and returns the instances whose backoff has ended by `now`.
    func takeDueBackoff(now: Date) -> Set<String> {
        let due = Set(backoff.filter { $0.value <= now }.keys)
        for name in due { backoff[name] = nil }
        return due
    }
}

/// When failed instances may be retried.
enum BackoffSchedule {
    /// Failed instances whose manifest is unchanged since the failure and whose backoff ends after `now`.
    ///
    /// A changed manifest is not listed: the change itself triggers a reconcile, which overrides the backoff.
    static func pending(recorded: [String: RecordedInstance], desired: [DesiredInstance], now: Date) -> [String: Date] {
        let hashes = Dictionary(desired.map { ($0.name, $0.specHash) }, uniquingKeysWith: { first, _ in first })
        var result: [String: Date] = [:]
        for record in recorded.values where record.phase == .failed {
            guard let next = record.nextAttemptAt, let hash = hashes[record.name], record.failedSpecHash == hash
            else { continue }
            let date = Date(timeIntervalSince1970: next)
            if date > now { result[record.name] = date }
        }
        return result
    }
}
