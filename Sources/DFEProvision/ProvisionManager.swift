public import DFECore
import Foundation

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

    /// Problems the host's drivers have with specs, located at each manifest, and instances that would share a
    /// server object.
    public func problems(_ specs: [InstanceSpec]) -> [Diagnostic] {
        let own = specs.flatMap { spec -> [Diagnostic] in
            guard let host = hosts[spec.provisioner] else { return [] }
            return ResourceKind.allCases.flatMap { kind in
                host.provisioner(kind).problems(for: spec).map { Diagnostic($0, at: spec.source) }
            }
        }
        return own + collisions(specs)
    }

    /// Two instances (on any hosts) that would get the same object on the same server: located at the later
    /// manifest, naming both.
    public func collisions(_ specs: [InstanceSpec]) -> [Diagnostic] {
        var first: [ServerObject: InstanceSpec] = [:]
        var diagnostics: [Diagnostic] = []
        for spec in specs.sorted(by: {
            ($0.source.path, $0.source.line, $0.name) < ($1.source.path, $1.source.line, $1.name)
        }) {
            guard let host = hosts[spec.provisioner] else { continue }
            for kind in ResourceKind.allCases {
                for object in Set(host.provisioner(kind).serverObjects(for: spec)) {
                    if let earlier = first[object], earlier.name != spec.name {
                        diagnostics.append(
                            Diagnostic(
                                "instances '\(earlier.name)' (\(earlier.source), host '\(earlier.provisioner)') and '\(spec.name)' (host '\(spec.provisioner)') would both get \(object.kind) '\(object.name)' on \(object.server); rename one of them or give their hosts different prefixes",
                                at: spec.source))
                    } else if first[object] == nil {
                        first[object] = spec
                    }
                }
            }
        }
        return diagnostics
    }

    /// Driver roots that could make a delete reach what is not an instance's: `/`, empty, shared between
    /// different drivers, nested in one another, or holding one of `protected` (the state, manifests, config).
    public func rootProblems(protected: [(path: String, what: String)]) -> [Diagnostic] {
        struct Entry {
            var host: String
            var kind: ResourceKind
            var driver: String
            var path: String
            var location: SourceLocation
            var label: String { "\(kind.rawValue) root \(path) of host '\(host)'" }
        }
        var entries: [Entry] = []
        var diagnostics: [Diagnostic] = []
        for (name, host) in hosts.sorted(by: { $0.key < $1.key }) {
            for kind in ResourceKind.allCases {
                let reference = host.config.provides[kind]
                let option = reference?.options["root"]
                let location = option?.location ?? reference?.location ?? host.config.location
                if let option, option.text.trimmingCharacters(in: .whitespaces).isEmpty {
                    diagnostics.append(
                        Diagnostic(
                            "\(kind.rawValue) root of host '\(name)' is empty; name a directory of its own, such as var/\(kind.rawValue)",
                            at: location))
                    continue
                }
                for root in host.provisioner(kind).confinedRoots {
                    let path = URL(fileURLWithPath: root).standardizedFileURL.path
                    entries.append(
                        Entry(
                            host: name, kind: kind, driver: host.provisioner(kind).driverName, path: path,
                            location: location))
                }
            }
        }
        func inside(_ path: String, _ root: String) -> Bool {
            root == "/" || path == root || path.hasPrefix(root + "/")
        }
        for (index, entry) in entries.enumerated() {
            if entry.path == "/" {
                diagnostics.append(
                    Diagnostic(
                        "\(entry.label) is the file system root; name a directory of its own", at: entry.location))
                continue
            }
            for (path, what) in protected where inside(URL(fileURLWithPath: path).standardizedFileURL.path, entry.path)
            {
                diagnostics.append(
                    Diagnostic(
                        "\(entry.label) contains the \(what) (\(path)); a driver root must hold nothing but instances' data",
                        at: entry.location))
            }
            for other in entries[..<index] where other.path != "/" {
                let same = other.path == entry.path
                if same && other.kind == entry.kind && other.driver == entry.driver { continue }
                if same || inside(entry.path, other.path) || inside(other.path, entry.path) {
                    let relation =
                        same ? "is the same directory as" : inside(entry.path, other.path) ? "lies inside" : "contains"
                    diagnostics.append(
                        Diagnostic(
                            "\(entry.label) \(relation) \(other.label) (\(other.location)); driver roots must be separate directories",
                            at: entry.location))
                }
            }
        }
        return diagnostics
    }

    /// The sub-provisioner for a resource recorded under `host`/`driver`, if still configured that way.
    public func provisioner(host: String, kind: ResourceKind, driver: String) -> (any SubProvisioner)? {
        guard let resolved = hosts[host] else { return nil }
        let provisioner = resolved.provisioner(kind)
        return provisioner.driverName == driver ? provisioner : nil
    }
}
