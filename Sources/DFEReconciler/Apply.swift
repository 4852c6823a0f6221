import DFECore
import DFEProvision
import DFEState
import Foundation
import Logging

/// The outcome of applying one instance's plan.
struct InstanceOutcome: Sendable {
    var applied: [ResourceChange] = []
    var error: InstanceError?
    /// The instance row to save at the end of the run in one batch (bookkeeping only), if it changed.
    var bookkeeping: RecordedInstance?
}

extension Reconciler {
    /// Applies a plan under the lease: journal, drivers, state.
    func apply(
        _ options: ReconcileOptions, inputs: LoadedInputs, store: any StateStoring, observer: ReconcileObserver?
    ) async throws -> ReconcileReport {
        let holder = "\(getpid())@\(Lease.hostName())"
        var warnings: [String] = []
        // Planned and checked before anything is written: a refused prune or selection changes nothing.
        var recorded = try await store.instances(withFields: false)
        var (plan, desired, planWarnings) = try await self.plan(inputs: inputs, recorded: recorded, options: options)
        var stale: [StaleInstance] = []
        if let binding = options.binding {
            (plan, stale) = Self.bind(plan, to: binding, desired: desired, recorded: recorded)
        }
        if let refusal = PruneGuard.check(
            plan, manifests: inputs.desired.count, maxPrune: inputs.config.settings.maxPrune,
            pruneAll: options.pruneAll)
        {
            throw ReconcileError.pruneRefused(refusal)
        }
        let interrupted = try await store.recoverInterrupted(at: clock.now())
        if !interrupted.isEmpty {
            let steps = interrupted.map { "\($0.instance)/\($0.resource.rawValue) \($0.action.rawValue)" }
            let message =
                "finishing \(interrupted.count) step(s) interrupted by an earlier run: \(steps.joined(separator: ", "))"
            warnings.append(message)
            observer?(.warning(message))
            logger.warning("recovering interrupted steps", metadata: ["count": "\(interrupted.count)"])
        }
        let runID = try await store.beginRun(holder: holder, revision: options.revision, at: clock.now())
        // Applied fields are read only for the resources that need them: changed updates and prunes.
        let applied = try await store.appliedFields(keys: Planner.resourcesNeedingFields(plan))
        Planner.completeFieldChanges(&plan, desired: desired, recorded: recorded, applied: applied)
        for (key, fields) in applied { recorded[key.instance]?.resources[key.kind]?.fields = fields }
        warnings += planWarnings
        for warning in planWarnings { observer?(.warning(warning)) }
        observer?(.planned(steps: plan.changes.count))
        let parallelism = options.parallelism ?? inputs.config.settings.parallelism
        let backoff = inputs.config.settings.backoff
        let finalPlan = plan
        let records = recorded
        let wanted = desired
        let outcomes = await concurrentMap(finalPlan.instances, limit: parallelism) { instancePlan in
            if options.shouldStop?() == true || store.hasLostLease { return InstanceOutcome() }
            return await applyInstance(
                instancePlan, desired: wanted[instancePlan.name], record: records[instancePlan.name],
                inputs: inputs, options: options, backoff: backoff, store: store, runID: runID, observer: observer)
        }
        // A run that lost its lease stops here: its results would overwrite the new holder's.
        if store.hasLostLease { throw StateError.leaseLost }
        try await store.saveInstances(outcomes.compactMap(\.bookkeeping), at: clock.now())
        var report = ReconcileReport(dryRun: false, plan: plan, warnings: warnings, revision: options.revision)
        report.stale = stale
        report.applied = outcomes.flatMap(\.applied)
        report.errors = outcomes.compactMap(\.error)
        let summary = report.summary
        let summaryText =
            "create=\(summary.create) update=\(summary.update) delete=\(summary.delete) retain=\(summary.retain) unchanged=\(summary.unchanged) orphaned=\(summary.orphaned) failed=\(summary.failed)"
        try await store.finishRun(
            runID, status: report.errors.isEmpty ? "succeeded" : "failed", summary: summaryText, at: clock.now())
        return report
    }

    /// Keeps the instances whose fresh plan is exactly the saved binding; the others are stale and left out.
    static func bind(
        _ plan: Plan, to binding: [String: InstanceBinding], desired: [String: DesiredInstance],
        recorded: [String: RecordedInstance]
    ) -> (Plan, [StaleInstance]) {
        var kept = plan
        kept.instances = []
        var stale: [StaleInstance] = []
        var planned = Set<String>()
        for instance in plan.instances {
            planned.insert(instance.name)
            guard let saved = binding[instance.name] else { continue }
            let current = InstanceBinding(instance, desired: desired[instance.name], recorded: recorded[instance.name])
            if let why = saved.mismatch(current) {
                stale.append(StaleInstance(name: instance.name, reason: why))
            } else {
                kept.instances.append(instance)
            }
        }
        for name in binding.keys where !planned.contains(name) {
            stale.append(StaleInstance(name: name, reason: "no longer in the manifests or the state"))
        }
        return (kept, stale.sorted { $0.name < $1.name })
    }

    /// Applies one instance's changes in dependency order; a failure stops this instance only.
    func applyInstance(
        _ plan: InstancePlan, desired: DesiredInstance?, record: RecordedInstance?, inputs: LoadedInputs,
        options: ReconcileOptions, backoff: Backoff, store: any StateStoring, runID: Int64, observer: ReconcileObserver?
    ) async -> InstanceOutcome {
        var outcome = InstanceOutcome()
        let now = clock.now()
        switch plan.disposition {
        case .orphaned, .protected:
            if var row = record, row.phase != .orphaned {
                row.phase = .orphaned
                outcome.bookkeeping = row
            }
            return outcome
        case .suspended:
            guard let desired else { return outcome }
            var row = baseRow(desired, record: record, revision: options.revision ?? record?.revision)
            row.phase = .suspended
            if row != record { outcome.bookkeeping = row }
            return outcome
        case .prune:
            guard let record else { return outcome }
            return await prune(
                plan, record: record, inputs: inputs, backoff: backoff, store: store, runID: runID, observer: observer)
        case .converge:
            break
        }
        guard let desired else { return outcome }
        var row = baseRow(desired, record: record, revision: options.revision)
        if let (kind, message) = plan.failures.sorted(by: { $0.key < $1.key }).first {
            return failed(
                &row, record: record, desired: desired, backoff: backoff, now: now, kind: kind, message: message)
        }
        let settled: Phase = plan.drift.isEmpty ? .ready : .drifted
        guard plan.hasChanges else {
            row.phase = settled
            row.lastError = nil
            row.attempts = 0
            row.nextAttemptAt = nil
            row.failedSpecHash = nil
            if row != record { outcome.bookkeeping = row }
            return outcome
        }
        guard let host = inputs.manager.hosts[desired.spec.provisioner] else { return outcome }
        row.phase = .provisioning
        do {
            try await store.saveInstance(row, at: now)
        } catch {
            outcome.error = InstanceError(instance: plan.name, resource: nil, message: "state: \(error)")
            return outcome
        }
        var outputs: [ResourceKind: [String: String]] = [:]
        var changes = plan.changes
        var index = 0
        while index < changes.count {
            let change = changes[index]
            index += 1
            guard let want = desired.resources[change.resource] else { continue }
            let context = Self.context(
                instance: desired, kind: change.resource, want: want, host: host, record: record, outputs: outputs)
            let result = await step(change, store: store, runID: runID, observer: observer) {
                let produced = try await host.provisioner(change.resource).apply(context)
                return .recorded(
                    RecordedResource(
                        kind: change.resource, host: want.host, driver: want.driver, specHash: want.specHash,
                        fields: want.fields, outputs: produced))
            }
            switch result {
            case .success(.recorded(let resource)):
                outputs[change.resource] = resource.outputs
                outcome.applied.append(change)
                if index == changes.count, change.resource != .instance, record?.resources[.instance] != nil,
                    let dependent = await dependentUpdate(
                        desired: desired, host: host, record: record, outputs: outputs)
                {
                    changes.append(dependent)
                }
            case .success(.forgotten):
                outcome.applied.append(change)
            case .failure(let message):
                var failedOutcome = failed(
                    &row, record: record, desired: desired, backoff: backoff, now: clock.now(), kind: change.resource,
                    message: message)
                failedOutcome.applied = outcome.applied
                return failedOutcome
            }
        }
        row.phase = settled
        row.lastError = nil
        row.attempts = 0
        row.nextAttemptAt = nil
        row.failedSpecHash = nil
        outcome.bookkeeping = row
        return outcome
    }

    /// An update of the instance resource when the storage or database it was rendered from changed in this run.
    func dependentUpdate(
        desired: DesiredInstance, host: ResolvedHost, record: RecordedInstance?,
        outputs: [ResourceKind: [String: String]]
    ) async -> ResourceChange? {
        guard let want = desired.resources[.instance] else { return nil }
        let context = Self.context(
            instance: desired, kind: .instance, want: want, host: host, record: record, outputs: outputs)
        guard let status = try? await host.provisioner(.instance).observe(context), status != .ok else { return nil }
        return ResourceChange(
            instance: desired.name, resource: .instance, action: .update, reason: "dependency",
            detail: "storage or database changed")
    }

    /// The instance row as the manifest says, keeping backoff bookkeeping from the record.
    func baseRow(_ desired: DesiredInstance, record: RecordedInstance?, revision: String?) -> RecordedInstance {
        let spec = desired.spec
        var row = RecordedInstance(
            name: spec.name, owner: spec.owner, provisioner: spec.provisioner, specHash: desired.specHash,
            phase: record?.phase ?? .pending, lastError: record?.lastError, attempts: record?.attempts ?? 0,
            nextAttemptAt: record?.nextAttemptAt, failedSpecHash: record?.failedSpecHash,
            revision: revision ?? record?.revision, protect: spec.protect,
            storageDeletionPolicy: spec.storageDeletionPolicy, databaseDeletionPolicy: spec.databaseDeletionPolicy,
            labels: spec.labels)
        row.resources = record?.resources ?? [:]
        return row
    }

    /// Records a failure with capped exponential backoff; a changed manifest restarts the count.
    func failed(
        _ row: inout RecordedInstance, record: RecordedInstance?, desired: DesiredInstance, backoff: Backoff, now: Date,
        kind: ResourceKind, message: String
    ) -> InstanceOutcome {
        let previous = record?.failedSpecHash == desired.specHash ? (record?.attempts ?? 0) : 0
        row.attempts = previous + 1
        row.phase = .failed
        row.lastError = "\(kind.rawValue): \(message)"
        row.failedSpecHash = desired.specHash
        row.nextAttemptAt =
            now.addingTimeInterval(backoff.delay(afterAttempts: row.attempts).seconds).timeIntervalSince1970
        logger.error(
            "instance failed",
            metadata: [
                "instance": "\(row.name)", "resource": "\(kind.rawValue)", "error": "\(message)",
                "attempts": "\(row.attempts)",
            ])
        var outcome = InstanceOutcome()
        outcome.error = InstanceError(instance: row.name, resource: kind, message: message)
        outcome.bookkeeping = row
        return outcome
    }

    /// Deletes (or retains) an orphan's resources, instance first; forgets it once all are gone.
    func prune(
        _ plan: InstancePlan, record: RecordedInstance, inputs: LoadedInputs, backoff: Backoff, store: any StateStoring,
        runID: Int64, observer: ReconcileObserver?
    ) async -> InstanceOutcome {
        var outcome = InstanceOutcome()
        var row = record
        row.phase = .deprovisioning
        try? await store.saveInstance(row, at: clock.now())
        for change in plan.changes {
            guard let resource = record.resources[change.resource] else { continue }
            let provisioner = inputs.manager.provisioner(
                host: resource.host, kind: change.resource, driver: resource.driver)
            let hostConfig = inputs.manager.hosts[resource.host]?.config
            let result = await step(change, store: store, runID: runID, observer: observer) {
                if change.action == .delete {
                    guard let provisioner, let hostConfig else {
                        throw DriverError(
                            "host '\(resource.host)' with \(change.resource.rawValue) driver '\(resource.driver)' is no longer configured; restore it to delete this resource",
                            retryable: false)
                    }
                    let context = ResourceContext(
                        name: record.name, owner: record.owner, spec: nil, host: hostConfig, fields: resource.fields,
                        recorded: resource)
                    try await provisioner.delete(context)
                }
                return .forgotten(change.resource)
            }
            if case .failure(let message) = result {
                row.phase = .failed
                row.lastError = "\(change.resource.rawValue): \(message)"
                row.attempts += 1
                let delay = backoff.delay(afterAttempts: row.attempts).seconds
                row.nextAttemptAt = clock.now().addingTimeInterval(delay).timeIntervalSince1970
                outcome.bookkeeping = row
                outcome.error = InstanceError(instance: record.name, resource: change.resource, message: message)
                return outcome
            }
            outcome.applied.append(change)
        }
        do {
            try await store.forgetInstance(record.name)
        } catch {
            outcome.error = InstanceError(instance: record.name, resource: nil, message: "state: \(error)")
        }
        return outcome
    }

    enum StepResult {
        case success(StateOutcome)
        case failure(String)
    }

    /// Journals intent, runs the driver action, journals the outcome with the state change in one transaction.
    func step(
        _ change: ResourceChange, store: any StateStoring, runID: Int64, observer: ReconcileObserver?,
        _ action: () async throws -> StateOutcome
    ) async -> StepResult {
        let started = ContinuousClock.now
        observer?(.stepStarted(change))
        let journalID: Int64
        do {
            journalID = try await store.recordIntent(run: runID, change: change, at: clock.now())
        } catch {
            let message = "state: \(error)"
            observer?(.stepFinished(change, duration: ContinuousClock.now - started, error: message))
            return .failure(message)
        }
        do {
            let outcome = try await action()
            try await store.recordSuccess(journalID, instance: change.instance, outcome: outcome, at: clock.now())
            let duration = ContinuousClock.now - started
            logger.info("step applied", metadata: Self.metadata(change, duration: duration))
            observer?(.stepFinished(change, duration: duration, error: nil))
            return .success(outcome)
        } catch {
            let message = "\(error)"
            try? await store.recordFailure(journalID, error: message, at: clock.now())
            let duration = ContinuousClock.now - started
            var metadata = Self.metadata(change, duration: duration)
            metadata["error"] = "\(message)"
            logger.error("step failed", metadata: metadata)
            observer?(.stepFinished(change, duration: duration, error: message))
            return .failure(message)
        }
    }

    /// The log fields of one step: instance, resource, action, reason and duration.
    static func metadata(_ change: ResourceChange, duration: Duration) -> Logger.Metadata {
        [
            "instance": "\(change.instance)", "resource": "\(change.resource.rawValue)",
            "action": "\(change.action.rawValue)", "reason": "\(change.reason)",
            "duration": "\(DurationText.format(duration))",
        ]
    }
}
