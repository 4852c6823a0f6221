public import DFECore
public import Foundation

/// Everything a driver needs to act on one resource of one instance.
public struct ResourceContext: Sendable {
    /// The instance name (always set, also for orphans).
    public var name: String
    public var owner: String
    /// The desired spec; nil when the instance is being pruned.
    public var spec: InstanceSpec?
    /// The host the instance is provisioned by.
    public var host: HostConfig
    /// Desired fields of this resource (empty when pruning).
    public var fields: FieldSet
    /// What the state remembers of this resource, if anything.
    public var recorded: RecordedResource?
    /// Outputs of the resources this one depends on (the instance depends on storage and database).
    public var dependencies: [ResourceKind: [String: String]]
    /// The id of the state this run works for (nil in a dry run before any state exists): every object a
    /// driver creates carries it in its ownership record, and an object carrying another id is not ours.
    public var stateID: String?

    public init(
        name: String, owner: String, spec: InstanceSpec?, host: HostConfig, fields: FieldSet,
        recorded: RecordedResource?, dependencies: [ResourceKind: [String: String]] = [:], stateID: String? = nil
    ) {
        self.name = name
        self.owner = owner
        self.spec = spec
        self.host = host
        self.fields = fields
        self.recorded = recorded
        self.dependencies = dependencies
        self.stateID = stateID
    }

    /// The ownership record an object made for this resource carries (nil without a state id).
    public var ownershipRecord: OwnershipRecord? {
        stateID.map { OwnershipRecord(instance: name, owner: owner, stateID: $0) }
    }
}

/// Why retrying cannot fix a failure.
public enum TerminalReason: String, Sendable, Hashable, CaseIterable, Codable {
    /// Something that is not ours is in the way (an object without our ownership record).
    case conflict
    /// dfe lacks a privilege (file permissions, a missing server privilege).
    case permission
    /// The server refused the request as invalid (bad name, unsupported value).
    case rejected
    /// The configuration cannot work (a host or driver no longer configured, a refused path).
    case configuration
}

/// Whether a driver failure may go away by itself (retry with backoff) or needs a person (terminal).
public enum DriverErrorClass: Sendable, Hashable {
    /// Retrying later can help: an unreachable server, a busy file.
    case retryable
    /// Retrying cannot help until the spec or config changes or an operator retries by hand.
    case terminal(TerminalReason)

    /// The terminal reason, or nil when retryable.
    public var terminalReason: TerminalReason? {
        if case .terminal(let reason) = self { return reason }
        return nil
    }
}

/// A driver-level failure that names what went wrong and how to fix it.
public struct DriverError: Error, Sendable, CustomStringConvertible, Equatable {
    public var message: String
    /// Whether retrying later can help (unreachable server) or not (conflict).
    public var errorClass: DriverErrorClass

    /// A failure of the given class (retryable unless said otherwise).
    public init(_ message: String, class errorClass: DriverErrorClass = .retryable) {
        self.message = message
        self.errorClass = errorClass
    }

    /// A failure that is retryable or else terminal because the request was rejected (prefer `class:`).
    public init(_ message: String, retryable: Bool) {
        self.init(message, class: retryable ? .retryable : .terminal(.rejected))
    }

    /// A conflict: an object at our name that is not ours.
    public static func conflict(_ message: String) -> DriverError { DriverError(message, class: .terminal(.conflict)) }

    /// Whether retrying later can help.
    public var retryable: Bool { errorClass == .retryable }

    public var description: String { message }
}

/// The behaviour shared by every sub-provisioner: describe, observe, apply, delete — all idempotent.
public protocol SubProvisioner: Sendable {
    /// The registry name of this driver (`local`, `sqlite`, `postgres`, `dreamfactory`).
    var driverName: String { get }

    /// The desired, non-secret fields of this resource for `spec` (pure: no I/O).
    ///
    /// `dependencies` holds the fields of the resources this one depends on.
    func fields(for spec: InstanceSpec, host: HostConfig, dependencies: [ResourceKind: FieldSet]) -> FieldSet

    /// Looks at the real resource; cheap, and never changes anything.
    func observe(_ context: ResourceContext) async throws -> ObservedStatus

    /// Creates or repairs the resource so it matches `context.fields`; returns its outputs.
    func apply(_ context: ResourceContext) async throws -> [String: String]

    /// Removes the resource (only its own data); absent is success.
    func delete(_ context: ResourceContext) async throws

    /// Problems this driver has with a spec, reported by `dfe validate` before anything runs.
    func problems(for spec: InstanceSpec) -> [String]

    /// The directories this driver keeps instances' data below, for root validation.
    var confinedRoots: [String] { get }

    /// The objects a spec gets on a server that other hosts or workspaces may share, for collision validation.
    func serverObjects(for spec: InstanceSpec) -> [ServerObject]
}

extension SubProvisioner {
    /// Problems this driver has with a spec that validation must report (default: none).
    public func problems(for spec: InstanceSpec) -> [String] { [] }

    /// The directories this driver keeps instances' data below (default: none); validation refuses `/`, roots
    /// shared between drivers or nested in one another, and roots holding the state, manifests or config.
    public var confinedRoots: [String] { [] }

    /// The objects a spec gets on a server other workspaces' hosts may share (default: none); validation refuses
    /// two instances that would get the same one.
    public func serverObjects(for spec: InstanceSpec) -> [ServerObject] { [] }
}

/// One object an instance gets on a shared server, such as a PostgreSQL role and database.
public struct ServerObject: Sendable, Hashable {
    /// Where the server is, e.g. `postgres 127.0.0.1:5432`.
    public var server: String
    /// What the object is, e.g. `database and role`.
    public var kind: String
    public var name: String

    public init(server: String, kind: String, name: String) {
        self.server = server
        self.kind = kind
        self.name = name
    }
}

/// Provisions an instance's file storage.
public protocol StorageProvisioner: SubProvisioner {}
/// Provisions an instance's database.
public protocol DatabaseProvisioner: SubProvisioner {}
/// Provisions the instance itself (its metadata document).
public protocol InstanceProvisioner: SubProvisioner {}

/// What a driver factory gets besides its options.
public struct DriverEnvironment: Sendable {
    /// The workspace root; relative paths in config resolve against it.
    public var root: URL
    /// Process environment (for `passwordEnv`).
    public var environment: [String: String]

    public init(root: URL, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.root = root
        self.environment = environment
    }

    /// Resolves a config path against the workspace root.
    public func resolve(_ path: String) -> URL {
        path.hasPrefix("/")
            ? URL(fileURLWithPath: path).standardizedFileURL
            : root.appendingPathComponent(path).standardizedFileURL
    }
}

/// Helpers for drivers to read their options with located errors.
public struct DriverOptions: Sendable {
    public var reference: DriverReference
    public var kind: ResourceKind
    public var host: String

    public init(reference: DriverReference, kind: ResourceKind, host: String) {
        self.reference = reference
        self.kind = kind
        self.host = host
    }

    /// A required option, or a diagnostic naming it.
    public func required(_ key: String) throws -> String {
        guard let value = reference.options[key]?.text, !value.isEmpty else {
            throw Diagnostic(
                "\(kind.rawValue) driver '\(reference.driver)' of host '\(host)' needs option '\(key)'",
                at: reference.location)
        }
        return value
    }

    /// An optional option.
    public func optional(_ key: String) -> String? { reference.options[key]?.text }

    /// Rejects options the driver does not know.
    public func allow(_ keys: Set<String>) throws {
        for (key, value) in reference.options where !keys.contains(key) {
            throw Diagnostic(
                "unknown option '\(key)' for \(kind.rawValue) driver '\(reference.driver)'; known: \(keys.sorted().joined(separator: ", "))",
                at: value.location)
        }
    }

    /// A located error about one option.
    public func error(_ key: String, _ message: String) -> Diagnostic {
        Diagnostic(message, at: reference.options[key]?.location ?? reference.location)
    }
}

/// Runs blocking work (file system, libpq, SQLite) off the cooperative thread pool.
public func offloaded<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            continuation.resume(with: Result { try work() })
        }
    }
}
