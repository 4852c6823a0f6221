public import DFECore
public import DFEProvision
public import DFEState
public import Foundation
public import Logging

/// Options of one run.
public struct ReconcileOptions: Sendable {
    public var dryRun = false
    /// nil: use config's `prune`.
    public var prune: Bool?
    /// Limit the run to these instances.
    public var only: Set<String>?
    /// Whether an `--only` name that no manifest or state knows is an error (the controller queues names of
    /// manifests that may be gone by the time it runs, so it turns this off).
    public var onlyMustExist = true
    /// Limit the run to instances with these labels (`--selector`).
    public var selector = LabelSelector()
    /// Lift the prune guards (`--prune-all`): pruning every instance, or more than `maxPrune`.
    public var pruneAll = false
    /// A saved plan's instances (`reconcile --plan`): only these are planned, and each is applied only when
    /// re-planning it gives exactly this binding; the others are reported stale and left alone.
    public var binding: [String: InstanceBinding]?
    /// nil: use config's `parallelism`.
    public var parallelism: Int?
    /// Wait for the state lease instead of failing.
    public var wait = false
    /// Skip failed instances whose backoff has not ended (the controller); a hand-typed run retries at once.
    public var honourBackoff = false
    /// The manifests' revision (git commit) to record.
    public var revision: String?
    /// Plan from the recorded state alone, without observing any resource (`--no-refresh`).
    public var noRefresh = false
    /// Run even when this user does not own the state (`--allow-other-user`).
    public var allowOtherUser = false
    /// Asked before each instance is started; true stops scheduling more (graceful shutdown).
    public var shouldStop: (@Sendable () -> Bool)?

    public init(
        dryRun: Bool = false, prune: Bool? = nil, only: Set<String>? = nil, parallelism: Int? = nil,
        wait: Bool = false, honourBackoff: Bool = false, revision: String? = nil
    ) {
        self.dryRun = dryRun
        self.prune = prune
        self.only = only
        self.parallelism = parallelism
        self.wait = wait
        self.honourBackoff = honourBackoff
        self.revision = revision
    }
}

/// Observes, plans and applies: the level-based reconcile of a workspace.
public struct Reconciler: Sendable {
    public var workspace: Workspace
    public var registry: DriverRegistry
    public var environment: [String: String]
    public var clock: any WallClock
    public var logger: Logger
    /// How long a lease lasts without renewal.
    public var leaseTTL: Duration = .seconds(15)
    /// How often the lease is renewed while running.
    public var leaseRenewal: Duration = .seconds(5)
    /// A store whose lease the caller already holds and renews (a leading controller): runs use it and neither
    /// acquire nor release the lease; its fencing epoch guards every write.
    public var heldStore: (any StateStoring)?

    public init(
        workspace: Workspace, registry: DriverRegistry,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        clock: any WallClock = SystemClock(), logger: Logger = Logger(label: "dfe")
    ) {
        self.workspace = workspace
        self.registry = registry
        self.environment = environment
        self.clock = clock
        self.logger = logger
    }

    /// Loads and validates config and manifests.
    public func loadInputs() throws(ReconcileError) -> LoadedInputs {
        do {
            return try InputLoader.load(workspace, registry: registry, environment: environment)
        } catch {
            throw .invalid(error)
        }
    }

    /// One run. Dry runs read state without writing; applying runs hold the state lease.
    public func run(_ options: ReconcileOptions, observer: ReconcileObserver? = nil) async throws(ReconcileError)
        -> ReconcileReport
    {
        let started = ContinuousClock.now
        // A dry run reads the state while the manifests are parsed.
        async let snapshot =
            options.dryRun ? Result { try workspace.stateBackend().snapshot(withFields: false) } : nil
        let inputs = try loadInputs()
        logger.debug(
            "inputs loaded",
            metadata: [
                "instances": "\(inputs.specs.count)",
                "duration": "\(DurationText.format(ContinuousClock.now - started))",
            ])
        return try await run(options, inputs: inputs, snapshot: await snapshot, observer: observer)
    }

    /// One run over already-loaded inputs (the controller keeps the last good ones).
    public func run(
        _ options: ReconcileOptions, inputs: LoadedInputs, observer: ReconcileObserver? = nil
    ) async throws(ReconcileError) -> ReconcileReport {
        try await run(options, inputs: inputs, snapshot: nil, observer: observer)
    }

    func run(
        _ options: ReconcileOptions, inputs: LoadedInputs, snapshot: Result<[String: RecordedInstance], any Error>?,
        observer: ReconcileObserver?
    ) async throws(ReconcileError) -> ReconcileReport {
        let started = ContinuousClock.now
        if options.dryRun {
            let recorded: [String: RecordedInstance]
            do {
                recorded = try snapshot?.get() ?? workspace.stateBackend().snapshot(withFields: false)
            } catch {
                throw .state(error)
            }
            logger.debug("state read", metadata: ["duration": "\(DurationText.format(ContinuousClock.now - started))"])
            var (plan, desired, warnings) = try await self.plan(inputs: inputs, recorded: recorded, options: options)
            if let refusal = PruneGuard.check(
                plan, manifests: inputs.desired.count, maxPrune: inputs.config.settings.maxPrune,
                pruneAll: options.pruneAll)
            {
                throw .pruneRefused(refusal)
            }
            do {
                let applied = try workspace.stateBackend().appliedFields(keys: Planner.resourcesNeedingFields(plan))
                Planner.completeFieldChanges(&plan, desired: desired, recorded: recorded, applied: applied)
            } catch {
                throw .state(error)
            }
            plan.instances.sort { $0.name < $1.name }
            var report = ReconcileReport(dryRun: true, plan: plan, warnings: warnings, revision: options.revision)
            report.bindings = plan.instances.map {
                InstanceBinding($0, desired: desired[$0.name], recorded: recorded[$0.name])
            }
            report.errors = plan.instances.flatMap { instance in
                instance.failures.sorted { $0.key < $1.key }.map {
                    InstanceError(instance: instance.name, resource: $0.key, message: $0.value)
                }
            }
            report.duration = ContinuousClock.now - started
            return report
        }
        if let store = heldStore {
            do {
                var report = try await apply(options, inputs: inputs, store: store, observer: observer)
                report.duration = ContinuousClock.now - started
                return report
            } catch {
                throw .state(error)
            }
        }
        let store: any StateStoring
        do {
            if !options.allowOtherUser { try StateOwnership.check(workspace.state, root: workspace.root) }
            store = try workspace.stateBackend().open()
        } catch {
            throw .state(error)
        }
        defer { store.close() }
        let lease = Lease(store: store, clock: clock, ttl: leaseTTL)
        do {
            try await lease.acquire(wait: options.wait) { holder in observer?(.waitingForLease(holder: holder)) }
        } catch {
            throw .state(error)
        }
        let result: Result<ReconcileReport, any Error> = await withTaskGroup(of: Void.self) { group in
            group.addTask { await lease.keepRenewing(every: leaseRenewal) }
            defer { group.cancelAll() }
            do {
                return .success(try await apply(options, inputs: inputs, store: store, observer: observer))
            } catch {
                return .failure(error)
            }
        }
        await lease.release()
        switch result {
        case .success(var report):
            report.duration = ContinuousClock.now - started
            return report
        case .failure(let error as ReconcileError):
            throw error
        case .failure(let error):
            throw .state(error)
        }
    }

    // MARK: Planning

    /// The instances a run is limited to: a saved plan's, or `--only` and `--selector`'s (nil: all).
    func selection(
        inputs: LoadedInputs, recorded: [String: RecordedInstance], options: ReconcileOptions
    ) throws(ReconcileError) -> Set<String>? {
        if let binding = options.binding {
            // Names the plan knew that are gone from both manifests and state are reported stale, not planned.
            let known = Set(inputs.desired.map(\.name)).union(recorded.keys)
            return Set(binding.keys).intersection(known)
        }
        var only = options.only
        if !options.onlyMustExist, let names = only {
            only = names.intersection(Set(inputs.desired.map(\.name)).union(recorded.keys))
        }
        do {
            return try Selection.names(
                only: only, selector: options.selector, desired: inputs.desired, recorded: recorded)
        } catch {
            throw .selection(error)
        }
    }

    /// Observes every relevant resource and plans; also returns the instances skipped for backoff.
    func plan(
        inputs: LoadedInputs, recorded: [String: RecordedInstance], options: ReconcileOptions
    ) async throws(ReconcileError) -> (Plan, [String: DesiredInstance], [String]) {
        let now = clock.now().timeIntervalSince1970
        var warnings: [String] = []
        var desired: [DesiredInstance] = []
        let only = try selection(inputs: inputs, recorded: recorded, options: options)
        for instance in inputs.desired {
            if let only, !only.contains(instance.name) { continue }
            if options.honourBackoff, let record = recorded[instance.name], record.phase == .failed,
                record.failedSpecHash == instance.specHash, let next = record.nextAttemptAt, next > now
            {
                continue
            }
            desired.append(instance)
        }
        let manager = inputs.manager
        let targets = desired.filter { !$0.spec.suspend }
        let observations = await concurrentMap(targets, limit: max(4, ProcessInfo.processInfo.activeProcessorCount * 2))
        {
            instance -> [(ResourceKey, ObservedStatus)] in
            guard let host = manager.hosts[instance.spec.provisioner] else { return [] }
            let record = recorded[instance.name]
            var result: [(ResourceKey, ObservedStatus)] = []
            for kind in ResourceKind.allCases {
                guard let want = instance.resources[kind] else { continue }
                if options.noRefresh {
                    result.append((ResourceKey(instance.name, kind), Self.unobserved(record, kind)))
                    continue
                }
                let context = Self.context(
                    instance: instance, kind: kind, want: want, host: host, record: record, outputs: [:])
                let status: ObservedStatus
                do {
                    status = try await host.provisioner(kind).observe(context)
                } catch {
                    status = .conflict("cannot observe \(kind.rawValue): \(error)")
                }
                result.append((ResourceKey(instance.name, kind), status))
            }
            return result
        }
        logger.debug("resources observed", metadata: ["instances": "\(targets.count)"])
        var observed: [ResourceKey: ObservedStatus] = [:]
        for list in observations { for (key, status) in list { observed[key] = status } }
        var skippedForBackoff = Set(inputs.desired.map(\.name)).subtracting(desired.map(\.name))
        if let only { skippedForBackoff.formIntersection(only) }
        var relevantRecords = recorded
        for name in skippedForBackoff { relevantRecords[name] = nil }
        let plan = Planner.plan(
            desired: desired, recorded: relevantRecords, observed: observed,
            prune: options.prune ?? inputs.config.settings.prune, only: only)
        logger.debug("planned", metadata: ["instances": "\(plan.instances.count)"])
        // Skipped instances must not look orphaned: they are left out of the plan.
        var filtered = plan
        filtered.instances.removeAll { skippedForBackoff.contains($0.name) }
        for instance in filtered.instances where instance.disposition == .protected {
            warnings.append(
                "\(instance.name) is protected (protect: true) and was not pruned; to delete it, restore its manifest with protect: false, reconcile, then remove the manifest"
            )
        }
        return (filtered, Dictionary(uniqueKeysWithValues: desired.map { ($0.name, $0) }), warnings)
    }

    /// What `--no-refresh` assumes of a resource: as recorded when the state has it, else missing.
    static func unobserved(_ record: RecordedInstance?, _ kind: ResourceKind) -> ObservedStatus {
        record?.resources[kind] == nil ? .missing : .ok
    }

    /// Builds a driver context for one resource of a desired instance.
    static func context(
        instance: DesiredInstance, kind: ResourceKind, want: DesiredResource, host: ResolvedHost,
        record: RecordedInstance?, outputs: [ResourceKind: [String: String]]
    ) -> ResourceContext {
        var dependencies: [ResourceKind: [String: String]] = [:]
        if kind == .instance {
            for dependency in [ResourceKind.storage, .database] {
                dependencies[dependency] = outputs[dependency] ?? record?.resources[dependency]?.outputs ?? [:]
            }
        }
        return ResourceContext(
            name: instance.name, owner: instance.spec.owner, spec: instance.spec, host: host.config,
            fields: want.fields,
            recorded: record?.resources[kind], dependencies: dependencies)
    }
}
