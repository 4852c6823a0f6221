public import DFECore

/// A host resolved into its three live sub-provisioners.
public struct ResolvedHost: Sendable {
    public var config: HostConfig
    public var storage: any SubProvisioner
    public var database: any SubProvisioner
    public var instance: any SubProvisioner

    /// The sub-provisioner of one portable type.
    public func provisioner(_ kind: ResourceKind) -> any SubProvisioner {
        switch kind {
        case .storage: storage
        case .database: database
        case .instance: instance
        }
    }
}

/// Resolves each host's sub-provisioners from configuration alone and describes desired resources.
public struct ProvisionManager: Sendable {
    public let hosts: [String: ResolvedHost]
    public let defaultHost: String

    /// Builds every host's drivers; reports every unknown driver or bad option, located.
    public init(config: ProvisionersConfig, registry: DriverRegistry, environment: DriverEnvironment)
        throws(ValidationFailure)
    {
        var hosts: [String: ResolvedHost] = [:]
        var diagnostics: [Diagnostic] = []
        for (name, host) in config.hosts.sorted(by: { $0.key < $1.key }) {
            var built: [ResourceKind: any SubProvisioner] = [:]
            for kind in ResourceKind.allCases {
                guard let reference = host.provides[kind] else {
                    diagnostics.append(
                        Diagnostic("host '\(name)' provides no \(kind.rawValue) driver", at: host.location))
                    continue
                }
                guard let factory = registry.factory(kind, reference.driver) else {
                    let known = registry.known(kind).joined(separator: ", ")
                    diagnostics.append(
                        Diagnostic(
                            "unknown \(kind.rawValue) driver '\(reference.driver)' in host '\(name)'; known \(kind.rawValue) drivers: \(known)",
                            at: reference.location))
                    continue
                }
                do {
                    built[kind] = try factory(DriverOptions(reference: reference, kind: kind, host: name), environment)
                } catch let diagnostic as Diagnostic {
                    diagnostics.append(diagnostic)
                } catch {
                    diagnostics.append(
                        Diagnostic("\(kind.rawValue) driver '\(reference.driver)': \(error)", at: reference.location))
                }
            }
            if let storage = built[.storage], let database = built[.database], let instance = built[.instance] {
                hosts[name] = ResolvedHost(config: host, storage: storage, database: database, instance: instance)
            }
        }
        guard diagnostics.isEmpty else { throw ValidationFailure(diagnostics) }
        self.hosts = hosts
        self.defaultHost = config.defaultHost
    }

    /// The desired resources of one instance, described by its host's drivers.
    public func desired(_ spec: InstanceSpec) -> DesiredInstance? {
        guard let host = hosts[spec.provisioner] else { return nil }
        var fields: [ResourceKind: FieldSet] = [:]
        var resources: [ResourceKind: DesiredResource] = [:]
        for kind in ResourceKind.allCases {
            let driver = host.provisioner(kind)
            let set = driver.fields(for: spec, host: host.config, dependencies: fields)
            fields[kind] = set
            resources[kind] = DesiredResource(
                kind: kind, host: host.config.name, driver: driver.driverName, fields: set)
        }
        return DesiredInstance(spec: spec, resources: resources)
    }

    /// Problems the host's drivers have with specs, located at each manifest.
    public func problems(_ specs: [InstanceSpec]) -> [Diagnostic] {
        specs.flatMap { spec -> [Diagnostic] in
            guard let host = hosts[spec.provisioner] else { return [] }
            return ResourceKind.allCases.flatMap { kind in
                host.provisioner(kind).problems(for: spec).map { Diagnostic($0, at: spec.source) }
            }
        }
    }

    /// The sub-provisioner for a resource recorded under `host`/`driver`, if still configured that way.
    public func provisioner(host: String, kind: ResourceKind, driver: String) -> (any SubProvisioner)? {
        guard let resolved = hosts[host] else { return nil }
        let provisioner = resolved.provisioner(kind)
        return provisioner.driverName == driver ? provisioner : nil
    }
}
