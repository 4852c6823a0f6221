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
    public var resources: Resources
    /// The last failure cannot be fixed by retrying: not retried until the spec or config changes, or by hand.
    public var terminal: Bool = false
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
            if manifestsKnown, desiredByName[record.name] == nil, phase != .deprovisioning, phase != .failed {
                phase = .orphaned
            }
            result[record.name] = InstanceStatus(
                name: record.name, owner: record.owner, provisioner: record.provisioner, phase: phase.rawValue,
                lastError: record.lastError, attempts: record.attempts,
                nextAttemptAt: record.nextAttemptAt.map { formatter.string(from: Date(timeIntervalSince1970: $0)) },
                revision: record.revision, protect: record.protect, labels: record.labels,
                resources: resources(
                    storage: record.resources[.storage].map { ($0.driver, $0.outputs) },
                    database: record.resources[.database].map { ($0.driver, $0.outputs) },
                    instance: record.resources[.instance].map { ($0.driver, $0.outputs) }),
                terminal: record.phase == .failed && record.terminal)
        }
        for instance in desired where result[instance.name] == nil {
            let spec = instance.spec
            result[instance.name] = InstanceStatus(
                name: spec.name, owner: spec.owner, provisioner: spec.provisioner,
                phase: spec.suspend ? Phase.suspended.rawValue : Phase.pending.rawValue, lastError: nil, attempts: 0,
                nextAttemptAt: nil, revision: nil, protect: spec.protect, labels: spec.labels,
                resources: resources(
                    storage: instance.resources[.storage].map { ($0.driver, $0.fields.values) },
                    database: instance.resources[.database].map { ($0.driver, $0.fields.values) },
                    instance: instance.resources[.instance].map { ($0.driver, $0.fields.values) }))
        }
        return result.values.sorted { $0.name < $1.name }
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
        case name, owner, provisioner, phase, lastError, attempts, nextAttemptAt, revision, protect, labels, resources
        case terminal
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
        try container.encode(resources, forKey: .resources)
        try container.encode(terminal, forKey: .terminal)
    }
}
