/// What a driver found when it looked at a resource.
public enum ObservedStatus: Sendable, Hashable {
    /// Present and as last applied.
    case ok
    /// Not there at all.
    case missing
    /// There but different from what was applied (detail says how).
    case drifted(String)
    /// Something that is not ours is in the way; never overwritten.
    case conflict(String)
}

/// Lifecycle phase of an instance as shown by `dfe status`.
public enum Phase: String, Sendable, Codable, CaseIterable {
    case pending, provisioning, ready, failed, deprovisioning, orphaned, suspended, drifted
}

/// What a plan does to one resource.
public enum Action: String, Sendable, Codable, CaseIterable {
    case create, update, delete, retain

    /// The terraform-like sign used in text plans.
    public var symbol: String {
        switch self {
        case .create: "+"
        case .update: "~"
        case .delete: "-"
        case .retain: "!"
        }
    }
}

/// Identifies one resource of one instance.
public struct ResourceKey: Sendable, Hashable {
    public var instance: String
    public var kind: ResourceKind

    public init(_ instance: String, _ kind: ResourceKind) {
        self.instance = instance
        self.kind = kind
    }
}

/// The desired configuration of one resource, produced by its driver from the spec.
public struct DesiredResource: Sendable, Hashable {
    public var kind: ResourceKind
    public var host: String
    public var driver: String
    public let fields: FieldSet
    /// The hash of `fields`, computed once.
    public let specHash: String

    public init(kind: ResourceKind, host: String, driver: String, fields: FieldSet) {
        self.kind = kind
        self.host = host
        self.driver = driver
        self.fields = fields
        self.specHash = fields.hash
    }
}

/// A manifest resolved against its host: the spec and its three desired resources.
public struct DesiredInstance: Sendable, Hashable {
    public var spec: InstanceSpec
    public let resources: [ResourceKind: DesiredResource]
    /// Hash over everything that decides what is applied, including safety settings (computed once).
    public let specHash: String

    public init(spec: InstanceSpec, resources: [ResourceKind: DesiredResource]) {
        self.spec = spec
        self.resources = resources
        self.specHash = Self.hash(spec: spec, resources: resources)
    }

    public var name: String { spec.name }

    static func hash(spec: InstanceSpec, resources: [ResourceKind: DesiredResource]) -> String {
        var text = ""
        for kind in ResourceKind.allCases { text += "\(kind.rawValue)=\(resources[kind]?.specHash ?? "")\n" }
        text += "protect=\(spec.protect)\nsuspend=\(spec.suspend)\n"
        text +=
            "storagePolicy=\(spec.storageDeletionPolicy.rawValue)\ndatabasePolicy=\(spec.databaseDeletionPolicy.rawValue)\n"
        // Only a non-default policy is hashed, so hashes recorded before the field existed stay valid.
        if spec.driftPolicy != .repair { text += "driftPolicy=\(spec.driftPolicy.rawValue)\n" }
        return SHA256.hex(text)
    }
}

/// What the state remembers about one applied resource.
public struct RecordedResource: Sendable, Hashable {
    public var kind: ResourceKind
    public var host: String
    public var driver: String
    public var specHash: String
    /// Driver outputs (paths, names, generated credentials); secrets never printed.
    public var outputs: [String: String]
    /// The applied fields as compact JSON, decoded on use; nil when not loaded (a state read for planning
    /// leaves them out and fetches only those of resources that changed).
    public private(set) var fieldsJSON: String?

    public init(
        kind: ResourceKind, host: String, driver: String, specHash: String, fields: FieldSet,
        outputs: [String: String]
    ) {
        self.kind = kind
        self.host = host
        self.driver = driver
        self.specHash = specHash
        self.fieldsJSON = JSONText.encode(fields.values)
        self.outputs = outputs
    }

    /// A resource read from state whose fields are decoded on first use.
    public init(
        kind: ResourceKind, host: String, driver: String, specHash: String, fieldsJSON: String?,
        outputs: [String: String]
    ) {
        self.kind = kind
        self.host = host
        self.driver = driver
        self.specHash = specHash
        self.fieldsJSON = fieldsJSON
        self.outputs = outputs
    }

    /// The fields as last applied.
    public var fields: FieldSet {
        get { FieldSet(fieldsJSON.flatMap { JSONText.decodeStringMap($0) } ?? [:]) }
        set { fieldsJSON = JSONText.encode(newValue.values) }
    }

}

/// What the state remembers about one instance.
public struct RecordedInstance: Sendable, Hashable {
    public var name: String
    public var owner: String
    public var provisioner: String
    public var specHash: String
    public var phase: Phase
    public var lastError: String?
    public var attempts: Int
    /// Seconds since 1970 before which the controller does not retry.
    public var nextAttemptAt: Double?
    /// The spec hash that failed; a different one resets the backoff.
    public var failedSpecHash: String?
    public var revision: String?
    public var protect: Bool
    public var storageDeletionPolicy: DeletionPolicy
    public var databaseDeletionPolicy: DeletionPolicy
    public var labels: [String: String]
    public var resources: [ResourceKind: RecordedResource]

    public init(
        name: String, owner: String, provisioner: String, specHash: String = "", phase: Phase = .pending,
        lastError: String? = nil, attempts: Int = 0, nextAttemptAt: Double? = nil, failedSpecHash: String? = nil,
        revision: String? = nil, protect: Bool = false, storageDeletionPolicy: DeletionPolicy = .retain,
        databaseDeletionPolicy: DeletionPolicy = .retain, labels: [String: String] = [:],
        resources: [ResourceKind: RecordedResource] = [:]
    ) {
        self.name = name
        self.owner = owner
        self.provisioner = provisioner
        self.specHash = specHash
        self.phase = phase
        self.lastError = lastError
        self.attempts = attempts
        self.nextAttemptAt = nextAttemptAt
        self.failedSpecHash = failedSpecHash
        self.revision = revision
        self.protect = protect
        self.storageDeletionPolicy = storageDeletionPolicy
        self.databaseDeletionPolicy = databaseDeletionPolicy
        self.labels = labels
        self.resources = resources
    }

    public func deletionPolicy(of kind: ResourceKind) -> DeletionPolicy {
        switch kind {
        case .storage: storageDeletionPolicy
        case .database: databaseDeletionPolicy
        case .instance: .delete
        }
    }
}

/// One planned change to one resource.
public struct ResourceChange: Sendable, Hashable {
    public var instance: String
    public var resource: ResourceKind
    public var action: Action
    /// `new`, `adopt`, `changed`, `drift` or `pruned`.
    public var reason: String
    /// For updates: which fields change. For drift: what was found.
    public var fieldChanges: [FieldChange]
    public var detail: String?

    public init(
        instance: String, resource: ResourceKind, action: Action, reason: String,
        fieldChanges: [FieldChange] = [], detail: String? = nil
    ) {
        self.instance = instance
        self.resource = resource
        self.action = action
        self.reason = reason
        self.fieldChanges = fieldChanges
        self.detail = detail
    }
}

/// Drift found on a resource of an instance that only reports drift (`driftPolicy: Report`): not repaired.
public struct DriftReport: Sendable, Hashable, Codable {
    public var instance: String
    public var resource: ResourceKind
    /// What was found (`missing`, or the driver's description of the difference).
    public var detail: String

    public init(instance: String, resource: ResourceKind, detail: String) {
        self.instance = instance
        self.resource = resource
        self.detail = detail
    }
}

/// The plan for one instance.
public struct InstancePlan: Sendable, Hashable {
    public enum Disposition: String, Sendable, Hashable {
        /// Manifest present: converge to it.
        case converge
        /// Manifest present but `suspend: true`: left exactly as it is.
        case suspended
        /// Manifest gone, no prune: left alone and reported.
        case orphaned
        /// Manifest gone but `protect: true` in state: never deleted.
        case protected
        /// Manifest gone and pruning: deleted or retained per policy.
        case prune
    }

    public var name: String
    public var disposition: Disposition
    /// Changes in execution order (creation order, or reverse for prune).
    public var changes: [ResourceChange]
    public var unchanged: Int
    public var orphaned: Int
    /// Resources that cannot be applied (conflicts found while observing).
    public var failures: [ResourceKind: String]
    /// For a suspended instance: how many of its resources differ from what was applied (held back).
    public var held = 0
    /// Drift reported and left alone (`driftPolicy: Report`); such resources count as drifted, not unchanged.
    public var drift: [DriftReport]

    public init(
        name: String, disposition: Disposition, changes: [ResourceChange] = [], unchanged: Int = 0,
        orphaned: Int = 0, failures: [ResourceKind: String] = [:], drift: [DriftReport] = []
    ) {
        self.name = name
        self.disposition = disposition
        self.changes = changes
        self.unchanged = unchanged
        self.orphaned = orphaned
        self.failures = failures
        self.drift = drift
    }

    /// Whether applying this plan does anything.
    public var hasChanges: Bool { !changes.isEmpty }
}

/// Counts of resources per action, as in `--output json`'s `summary`.
public struct PlanSummary: Sendable, Hashable, Codable {
    public var create = 0
    public var update = 0
    public var delete = 0
    public var retain = 0
    public var unchanged = 0
    public var orphaned = 0
    public var failed = 0
    /// Suspended instances whose manifest differs from what was applied (instances, not resources).
    public var held = 0
    /// Resources with drift that is reported, not repaired (`driftPolicy: Report`).
    public var drifted = 0

    public init() {}

    /// Whether any create, update, delete or retain is pending.
    public var hasPendingChanges: Bool { create + update + delete + retain > 0 }

    public mutating func count(_ action: Action) {
        switch action {
        case .create: create += 1
        case .update: update += 1
        case .delete: delete += 1
        case .retain: retain += 1
        }
    }
}

/// A whole plan: one entry per instance, sorted by name.
public struct Plan: Sendable, Hashable {
    public var instances: [InstancePlan]

    public init(instances: [InstancePlan]) { self.instances = instances }

    public var summary: PlanSummary {
        var summary = PlanSummary()
        for instance in instances {
            for change in instance.changes { summary.count(change.action) }
            summary.unchanged += instance.unchanged
            summary.orphaned += instance.orphaned
            summary.failed += instance.failures.count
            if instance.held > 0 { summary.held += 1 }
            summary.drifted += instance.drift.count
        }
        return summary
    }

    /// All changes in instance order.
    public var changes: [ResourceChange] { instances.flatMap(\.changes) }

    /// All reported (unrepaired) drift in instance order.
    public var drift: [DriftReport] { instances.flatMap(\.drift) }
}

/// The pure planner: desired state + recorded state + observations → plan.
public enum Planner {
    /// Plans every desired and every recorded instance (limited to `only` when given).
    public static func plan(
        desired: [DesiredInstance], recorded: [String: RecordedInstance], observed: [ResourceKey: ObservedStatus],
        prune: Bool, only: Set<String>? = nil
    ) -> Plan {
        var result: [InstancePlan] = []
        var desiredNames = Set<String>()
        for instance in desired {
            desiredNames.insert(instance.name)
            if let only, !only.contains(instance.name) { continue }
            result.append(planDesired(instance, record: recorded[instance.name], observed: observed))
        }
        for (name, record) in recorded where !desiredNames.contains(name) {
            if let only, !only.contains(name) { continue }
            result.append(planOrphan(record, prune: prune))
        }
        result.sort { $0.name < $1.name }
        return Plan(instances: result)
    }

    static func planDesired(
        _ instance: DesiredInstance, record: RecordedInstance?, observed: [ResourceKey: ObservedStatus]
    ) -> InstancePlan {
        let kinds = ResourceKind.allCases.filter { instance.resources[$0] != nil }
        if instance.spec.suspend {
            // Nothing is observed or applied; what the manifest would change is counted as held.
            var plan = InstancePlan(name: instance.name, disposition: .suspended, unchanged: kinds.count)
            plan.held =
                kinds.filter { kind in
                    guard let want = instance.resources[kind], let have = record?.resources[kind] else { return true }
                    return have.specHash != want.specHash || have.driver != want.driver || have.host != want.host
                }.count
            return plan
        }
        var plan = InstancePlan(name: instance.name, disposition: .converge)
        for kind in kinds {
            guard let want = instance.resources[kind] else { continue }
            let status = observed[ResourceKey(instance.name, kind)] ?? .ok
            if case .conflict(let message) = status {
                plan.failures[kind] = message
                continue
            }
            let name = instance.name
            guard let have = record?.resources[kind] else {
                let reason = status == .missing ? "new" : "adopt"
                plan.changes.append(ResourceChange(instance: name, resource: kind, action: .create, reason: reason))
                continue
            }
            if kind != .instance, have.driver != want.driver {
                plan.failures[kind] =
                    "\(kind.rawValue) driver would change from \(have.driver) to \(want.driver); dfe does not migrate data between drivers: revert the change, or remove the instance (its data is retained) and move the data by hand"
                continue
            }
            if have.specHash != want.specHash || have.driver != want.driver || have.host != want.host {
                let changes = fieldChanges(want: want, have: have, applied: have.fields)
                plan.changes.append(
                    ResourceChange(
                        instance: name, resource: kind, action: .update, reason: "changed", fieldChanges: changes))
                continue
            }
            switch status {
            case .ok, .conflict:
                plan.unchanged += 1
            case .missing where instance.spec.driftPolicy == .report:
                plan.drift.append(DriftReport(instance: name, resource: kind, detail: "missing"))
            case .drifted(let detail) where instance.spec.driftPolicy == .report:
                plan.drift.append(DriftReport(instance: name, resource: kind, detail: detail))
            case .missing:
                plan.changes.append(
                    ResourceChange(instance: name, resource: kind, action: .create, reason: "drift", detail: "missing"))
            case .drifted(let detail):
                plan.changes.append(
                    ResourceChange(instance: name, resource: kind, action: .update, reason: "drift", detail: detail))
            }
        }
        return plan
    }

    /// The field changes of an update from the applied fields to the desired ones (driver and host first).
    public static func fieldChanges(want: DesiredResource, have: RecordedResource, applied: FieldSet) -> [FieldChange] {
        var changes = want.fields.changes(from: applied)
        if have.driver != want.driver {
            changes.insert(FieldChange(field: "driver", old: have.driver, new: want.driver), at: 0)
        }
        if have.host != want.host {
            changes.insert(FieldChange(field: "provisioner", old: have.host, new: want.host), at: 0)
        }
        return changes
    }

    /// Fills in the field changes of updates planned from a state read without applied fields.
    public static func completeFieldChanges(
        _ plan: inout Plan, desired: [String: DesiredInstance], recorded: [String: RecordedInstance],
        applied: [ResourceKey: FieldSet]
    ) {
        for index in plan.instances.indices {
            for changeIndex in plan.instances[index].changes.indices {
                let change = plan.instances[index].changes[changeIndex]
                guard change.action == .update, change.reason == "changed",
                    let want = desired[change.instance]?.resources[change.resource],
                    let have = recorded[change.instance]?.resources[change.resource]
                else { continue }
                let fields = applied[ResourceKey(change.instance, change.resource)] ?? have.fields
                plan.instances[index].changes[changeIndex].fieldChanges = fieldChanges(
                    want: want, have: have, applied: fields)
            }
        }
    }

    /// The resources whose applied fields a plan needs: changed updates and everything pruned.
    public static func resourcesNeedingFields(_ plan: Plan) -> [ResourceKey] {
        plan.changes.filter { ($0.action == .update && $0.reason == "changed") || $0.reason == "pruned" }
            .map { ResourceKey($0.instance, $0.resource) }
    }

    static func planOrphan(_ record: RecordedInstance, prune: Bool) -> InstancePlan {
        let kinds = ResourceKind.allCases.filter { record.resources[$0] != nil }
        guard prune else {
            return InstancePlan(name: record.name, disposition: .orphaned, orphaned: kinds.count)
        }
        if record.protect {
            return InstancePlan(name: record.name, disposition: .protected, orphaned: kinds.count)
        }
        var plan = InstancePlan(name: record.name, disposition: .prune)
        for kind in kinds.reversed() {
            let action: Action = record.deletionPolicy(of: kind) == .delete ? .delete : .retain
            plan.changes.append(ResourceChange(instance: record.name, resource: kind, action: action, reason: "pruned"))
        }
        return plan
    }
}
