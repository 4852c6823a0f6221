public import DFECore

/// Driver discovery: factories keyed by portable type and driver name.
public struct DriverRegistry: Sendable {
    /// Builds a driver from its options; throws a located diagnostic on bad options.
    public typealias Factory = @Sendable (DriverOptions, DriverEnvironment) throws -> any SubProvisioner

    private var factories: [ResourceKind: [String: Factory]] = [:]

    public init() {}

    /// Registers a storage driver.
    public mutating func registerStorage(
        _ name: String, _ make: @escaping @Sendable (DriverOptions, DriverEnvironment) throws -> any StorageProvisioner
    ) {
        factories[.storage, default: [:]][name] = { options, env in try make(options, env) }
    }

    /// Registers a database driver.
    public mutating func registerDatabase(
        _ name: String, _ make: @escaping @Sendable (DriverOptions, DriverEnvironment) throws -> any DatabaseProvisioner
    ) {
        factories[.database, default: [:]][name] = { options, env in try make(options, env) }
    }

    /// Registers an instance driver.
    public mutating func registerInstance(
        _ name: String, _ make: @escaping @Sendable (DriverOptions, DriverEnvironment) throws -> any InstanceProvisioner
    ) {
        factories[.instance, default: [:]][name] = { options, env in try make(options, env) }
    }

    /// Names of the drivers known for a type, sorted.
    public func known(_ kind: ResourceKind) -> [String] { (factories[kind] ?? [:]).keys.sorted() }

    /// The factory for a driver, or nil when unknown.
    public func factory(_ kind: ResourceKind, _ name: String) -> Factory? { factories[kind]?[name] }
}
