public import DFECore
import DFEState
public import Foundation

/// One instance as `dfe status --output json` and the controller's API show it. Never holds secrets.
public struct InstanceStatus: Sendable, Codable, Hashable {
    public struct StorageResource: Sendable, Codable, Hashable {
        public var driver: String?
        public var path: String?
    }

    public struct DatabaseResource: Sendable, Codable, Hashable {
        public var driver: String?
        public var path: String?
        public var name: String?
        public var host: String?
        public var port: Int?
    }

    public struct InstanceResource: Sendable, Codable, Hashable {
        public var driver: String?
        public var endpoint: String?
        public var metadataPath: String?
    }

    public struct Resources: Sendable, Codable, Hashable {
        public var storage: StorageResource?
        public var database: DatabaseResource?
        public var instance: InstanceResource?
    }

    public var name: String
    public var owner: String
    public var provisioner: String
    public var phase: String
    public var lastError: String?
    public var attempts: Int
    /// ISO 8601, or nil.
    public var nextAttemptAt: String?
    public var revision: String?
    public var protect: Bool
    public var labels: [String: String]
    /// The platform state the manifest asks for (active, locked, maintenance, deactivated); nil when unknown.
    public var platformState: String?
    /// The chosen offerings (suggested values filled in); empty when unknown.
    public var offerings: [String: String] = [:]
    public var resources: Resources
}

/// Builds status views from the recorded state and the manifests.
public enum StatusView {
    /// Every known instance: recorded ones, plus manifests never applied (phase `pending`), sorted by name.
    ///
    /// `desired` nil means the manifests could not be loaded: recorded phases are shown as they are, since
    /// calling everything orphaned would mislead an operator deciding whether to prune.
    public static func instances(recorded: [String: RecordedInstance], desired: [DesiredInstance]?) -> [InstanceStatus]
    {
        let manifestsKnown = desired != nil
        let desired = desired ?? []
        let formatter = ISO8601DateFormatter()
        var result: [String: InstanceStatus] = [:]
        let desiredByName = Dictionary(desired.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        for record in recorded.values {
            var phase = record.phase
            var record = record
            if manifestsKnown, desiredByName[record.name] == nil, phase != .deprovisioning, phase != .failed {
                phase = .orphaned
            }
            if let wanted = desiredByName[record.name], recoveredByRevert(record, desired: wanted) {
                // The failed change was reverted: a plan finds nothing to do, so status must not say failed.
                phase = .ready
                record.lastError = nil
                record.attempts = 0
                record.nextAttemptAt = nil
            }
            result[record.name] = InstanceStatus(
                name: record.name, owner: record.owner, provisioner: record.provisioner, phase: phase.rawValue,
                lastError: record.lastError, attempts: record.attempts,
                nextAttemptAt: record.nextAttemptAt.map { formatter.string(from: Date(timeIntervalSince1970: $0)) },
                revision: record.revision, protect: record.protect, labels: record.labels,
                platformState: desiredByName[record.name]?.spec.state.rawValue,
                offerings: desiredByName[record.name]?.spec.offerings ?? [:],
                resources: resources(
                    storage: record.resources[.storage].map { ($0.driver, $0.outputs) },
                    database: record.resources[.database].map { ($0.driver, $0.outputs) },
                    instance: record.resources[.instance].map { ($0.driver, $0.outputs) }))
        }
        for instance in desired where result[instance.name] == nil {
            let spec = instance.spec
            result[instance.name] = InstanceStatus(
                name: spec.name, owner: spec.owner, provisioner: spec.provisioner,
                phase: spec.suspend ? Phase.suspended.rawValue : Phase.pending.rawValue, lastError: nil, attempts: 0,
                nextAttemptAt: nil, revision: nil, protect: spec.protect, labels: spec.labels,
                platformState: spec.state.rawValue, offerings: spec.offerings,
                resources: resources(
                    storage: instance.resources[.storage].map { ($0.driver, $0.fields.values) },
                    database: instance.resources[.database].map { ($0.driver, $0.fields.values) },
                    instance: instance.resources[.instance].map { ($0.driver, $0.fields.values) }))
        }
        return result.values.sorted { $0.name < $1.name }
    }

    /// Whether a failed instance's manifest is back to exactly what was applied: its failure belonged to a
    /// manifest that is no longer wanted.
    ///
    /// Status is computed, never written, by read-only commands: an applying run records such an instance as
    /// ready (it converges with no changes), and until then status and `dfe plan` show the same truth in memory.
    public static func recoveredByRevert(_ record: RecordedInstance, desired: DesiredInstance) -> Bool {
        guard record.phase == .failed, let failed = record.failedSpecHash, failed != desired.specHash,
            !desired.spec.suspend
        else { return false }
        for kind in ResourceKind.allCases {
            guard let want = desired.resources[kind] else { continue }
            guard let have = record.resources[kind], have.specHash == want.specHash, have.driver == want.driver,
                have.host == want.host
            else { return false }
        }
        return true
    }

    static func resources(
        storage: (String, [String: String])?, database: (String, [String: String])?,
        instance: (String, [String: String])?
    ) -> InstanceStatus.Resources {
        InstanceStatus.Resources(
            storage: storage.map { InstanceStatus.StorageResource(driver: $0.0, path: $0.1["path"]) },
            database: database.map {
                InstanceStatus.DatabaseResource(
                    driver: $0.0, path: $0.1["path"], name: $0.1["name"], host: $0.1["host"],
                    port: $0.1["port"].flatMap { Int($0) })
            },
            instance: instance.map {
                InstanceStatus.InstanceResource(
                    driver: $0.0, endpoint: $0.1["endpoint"], metadataPath: $0.1["metadataPath"])
            })
    }

    /// `{"instances": [...]}` as pretty, key-sorted JSON.
    public static func json(_ instances: [InstanceStatus]) -> Data {
        encode(["instances": instances])
    }

    /// Any Encodable as pretty, key-sorted JSON with a trailing newline.
    public static func encode<T: Encodable>(_ value: T) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return ((try? encoder.encode(value)) ?? Data("{}".utf8)) + Data("\n".utf8)
    }
}

extension InstanceStatus {
    enum CodingKeys: String, CodingKey {
        case name, owner, provisioner, phase, lastError, attempts, nextAttemptAt, revision, protect, labels
        case platformState, offerings, resources
    }

    /// Encodes every key, writing `null` for absent values so scripts can rely on them.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(owner, forKey: .owner)
        try container.encode(provisioner, forKey: .provisioner)
        try container.encode(phase, forKey: .phase)
        try container.encode(lastError, forKey: .lastError)
        try container.encode(attempts, forKey: .attempts)
        try container.encode(nextAttemptAt, forKey: .nextAttemptAt)
        try container.encode(revision, forKey: .revision)
        try container.encode(protect, forKey: .protect)
        try container.encode(labels, forKey: .labels)
        try container.encode(platformState, forKey: .platformState)
        try container.encode(offerings, forKey: .offerings)
        try container.encode(resources, forKey: .resources)
    }
}
