/// The spec hashes one resource was planned with: what the manifest resolves to and what the state recorded.
public struct ResourceHashes: Sendable, Hashable, Codable {
    /// The desired spec hash (nil for a resource no manifest wants any more).
    public var desired: String?
    /// The recorded spec hash the plan was made against (nil when the state had none).
    public var recorded: String?

    public init(desired: String?, recorded: String?) {
        self.desired = desired
        self.recorded = recorded
    }
}

/// One planned change as a saved plan binds it: everything that decides what the apply does, no field values.
public struct BoundChange: Sendable, Hashable, Codable {
    public var resource: ResourceKind
    public var action: Action
    public var reason: String
    public var detail: String?

    public init(_ change: ResourceChange) {
        resource = change.resource
        action = change.action
        reason = change.reason
        detail = change.detail
    }

    /// `+ storage create (new)`, as in the text plan.
    public var summary: String {
        "\(action.symbol) \(resource.rawValue) \(action.rawValue) (\(reason))" + (detail.map { ": \($0)" } ?? "")
    }
}

/// What a reviewed plan promised for one instance; an apply goes ahead only when re-planning gives the same.
///
/// The hashes pin the desired and recorded fields exactly (they are hashes over them), so two equal bindings
/// mean the same changes to the same fields from the same recorded state.
public struct InstanceBinding: Sendable, Hashable, Codable {
    public var name: String
    public var disposition: String
    /// The instance-level spec hashes (safety settings included): desired and recorded.
    public var spec: ResourceHashes
    /// Per resource kind (raw value): the desired and recorded spec hashes.
    public var resources: [String: ResourceHashes]
    public var changes: [BoundChange]
    public var drift: [DriftReport]
    /// Resources that cannot be applied, with why.
    public var failures: [String: String]

    public init(
        name: String, disposition: String, spec: ResourceHashes, resources: [String: ResourceHashes],
        changes: [BoundChange], drift: [DriftReport], failures: [String: String]
    ) {
        self.name = name
        self.disposition = disposition
        self.spec = spec
        self.resources = resources
        self.changes = changes
        self.drift = drift
        self.failures = failures
    }

    /// The binding of one instance's plan against the desired and recorded state it was made from.
    public init(_ plan: InstancePlan, desired: DesiredInstance?, recorded: RecordedInstance?) {
        var resources: [String: ResourceHashes] = [:]
        for kind in ResourceKind.allCases {
            let want = desired?.resources[kind]?.specHash
            let have = recorded?.resources[kind]?.specHash
            if want != nil || have != nil { resources[kind.rawValue] = ResourceHashes(desired: want, recorded: have) }
        }
        self.init(
            name: plan.name, disposition: plan.disposition.rawValue,
            spec: ResourceHashes(desired: desired?.specHash, recorded: recorded?.specHash), resources: resources,
            changes: plan.changes.map(BoundChange.init), drift: plan.drift,
            failures: Dictionary(uniqueKeysWithValues: plan.failures.map { ($0.key.rawValue, $0.value) }))
    }

    /// Why `current` (a fresh plan of the same instance) is not what this saved binding promised; nil when equal.
    public func mismatch(_ current: InstanceBinding) -> String? {
        guard self != current else { return nil }
        if !changes.isEmpty, current.changes.isEmpty {
            return "nothing to do any more: its planned changes were applied since the plan, or undone"
        }
        for kind in ResourceKind.allCases {
            let saved = resources[kind.rawValue]
            let now = current.resources[kind.rawValue]
            if saved?.recorded != now?.recorded {
                return "the recorded \(kind.rawValue) changed since the plan (another run applied it)"
            }
            if saved?.desired != now?.desired { return "its \(kind.rawValue) resolves differently than in the plan" }
        }
        if spec.recorded != current.spec.recorded { return "its recorded state changed since the plan" }
        if spec.desired != current.spec.desired { return "its manifest resolves differently than in the plan" }
        if changes != current.changes {
            let list = current.changes.map(\.summary).joined(separator: "; ")
            return "its changes differ from the plan's; now: \(list.isEmpty ? "none" : list)"
        }
        if drift != current.drift { return "its drift differs from the plan's (changed by hand since?)" }
        if failures != current.failures { return "its failures differ from the plan's" }
        return "its plan is now \(current.disposition), not \(disposition)"
    }
}
