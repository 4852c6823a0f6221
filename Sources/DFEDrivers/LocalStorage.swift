public import DFECore
public import DFEProvision
import Foundation

/// `storage/local`: the DreamFactory Enterprise hashed owner layout on a local file system.
///
/// Owner tree `ROOT/ZONE/PARTITION/OWNERHASH/.private/snapshots`; instance tree
/// `ROOT/ZONE/PARTITION/OWNERHASH/NAME/` with `applications/` and the `.private` directories. Mode 0750.
public struct LocalStorageProvisioner: StorageProvisioner {
    public let driverName = "local"
    public let root: String
    public let zone: String

    /// Directories below the instance tree, besides the tree itself.
    static let instanceDirectories = [
        "applications", ".private", ".private/.cache", ".private/.limits_cache", ".private/config", ".private/scripts",
        ".private/scripts.user", ".private/logs", ".private/packages",
    ]
    static let mode: mode_t = 0o750

    public init(root: String, zone: String) {
        self.root = root
        self.zone = zone
    }

    /// Builds the driver from `{root, zone}` options.
    public static func make(_ options: DriverOptions, _ environment: DriverEnvironment) throws
        -> LocalStorageProvisioner
    {
        try options.allow(["root", "zone"])
        let root = environment.resolve(options.optional("root") ?? "var/storage").path
        let zone = options.optional("zone") ?? "local"
        guard InstanceName.isValid(zone) else {
            throw options.error("zone", "zone '\(zone)' must be a DNS label (lower-case letters, digits, '-')")
        }
        return LocalStorageProvisioner(root: root, zone: zone)
    }

    /// The sha256 hex of the lowercased owner.
    public static func ownerHash(_ owner: String) -> String { SHA256.hex(owner.lowercased()) }

    public func fields(for spec: InstanceSpec, host: HostConfig, dependencies: [ResourceKind: FieldSet]) -> FieldSet {
        let hash = Self.ownerHash(spec.owner)
        let ownerPath = "\(root)/\(zone)/\(hash.prefix(2))/\(hash)"
        let path = "\(ownerPath)/\(spec.name)"
        var fields = FieldSet([
            "driver": driverName,
            "owner": spec.owner.lowercased(),
            "zone": zone,
            "path": path,
            "privatePath": "\(path)/.private",
            "ownerPrivatePath": "\(ownerPath)/.private",
            "snapshotPath": "\(ownerPath)/.private/snapshots",
        ])
        if let quota = spec.storageQuota { fields["quota"] = Quantity.format(quota) }
        return fields
    }

    func directories(_ fields: FieldSet) -> [String] {
        guard let path = fields["path"], let snapshots = fields["snapshotPath"] else { return [] }
        return [snapshots, path] + Self.instanceDirectories.map { "\(path)/\($0)" }
    }

    public var confinedRoots: [String] { [root] }

    public func observe(_ context: ResourceContext) async throws -> ObservedStatus {
        // A changed owner, root or zone would re-point the instance at a new, empty tree: never silently.
        if let old = context.recorded?.outputs["path"], let new = context.fields["path"], old != new,
            FileSystem.entry(old) == .directory
        {
            return .conflict(
                "storage would move from \(old) to \(new) (owner, root or zone changed); dfe does not move customer data: move the directory by hand, then reconcile — or revert the change"
            )
        }
        if let path = context.fields["path"], let components = Confined.components(of: path, below: root) {
            switch OwnerMarker.verdict(root: root, components: components, path: path, context: context) {
            case .conflict(let message): return .conflict(message)
            case .absent, .ours, .oursWithoutMarker: break
            }
        }
        let wanted = directories(context.fields)
        var missing: [String] = []
        for directory in wanted where FileSystem.entry(directory) != .directory {
            missing.append(directory)
        }
        let path = context.fields["path"] ?? ""
        if missing.isEmpty {
            return FileSystem.entry(path + "/" + OwnerMarker.fileName) == .file
                ? .ok : .drifted("instance tree has no ownership marker")
        }
        if missing.count == wanted.count || FileSystem.entry(path) != .directory {
            return .missing
        }
        let names = missing.map { ($0 as NSString).lastPathComponent }
        return .drifted("missing directories: \(names.joined(separator: ", "))")
    }

    public func apply(_ context: ResourceContext) async throws -> [String: String] {
        let fields = context.fields
        let wanted = directories(fields)
        let root = self.root
        guard let path = fields["path"], let components = Confined.components(of: path, below: root) else {
            throw DriverError("no storage path below \(root)", class: .terminal(.configuration))
        }
        try await offloaded {
            let verdict = OwnerMarker.verdict(root: root, components: components, path: path, context: context)
            if case .conflict(let message) = verdict { throw DriverError.conflict(message) }
            for directory in wanted.prefix(2) { try FileSystem.makeDirectory(directory, mode: Self.mode) }
            // The marker first, so a crash right after leaves a tree that is provably ours.
            if verdict != .ours { try OwnerMarker.write(path, context) }
            for directory in wanted.dropFirst(2) { try FileSystem.makeDirectory(directory, mode: Self.mode) }
        }
        var outputs: [String: String] = ["driver": driverName]
        for key in ["path", "privatePath", "ownerPrivatePath", "snapshotPath", "quota"] {
            if let value = fields[key] { outputs[key] = value }
        }
        return outputs
    }

    /// Removes the instance tree `ROOT/ZONE/PARTITION/OWNERHASH/NAME` only: never the root, zone, partition or
    /// owner directory, never through a symbolic link at any level, and only when it carries our marker.
    public func delete(_ context: ResourceContext) async throws {
        guard let path = context.recorded?.outputs["path"] ?? context.recorded?.fields["path"] else { return }
        let root = self.root
        guard let components = Confined.components(of: path, below: root), components.count == 4,
            components[3] == context.name, components[2].hasPrefix(components[1]), components[1].count == 2
        else {
            throw DriverError(
                "refusing to delete \(path): not an instance tree ZONE/PARTITION/OWNERHASH/\(context.name) below \(root)",
                class: .terminal(.configuration))
        }
        try await offloaded {
            switch OwnerMarker.verdict(root: root, components: components, path: path, context: context) {
            case .absent: return
            case .conflict(let message): throw DriverError.conflict("refusing to delete: " + message)
            case .ours, .oursWithoutMarker: break
            }
            guard let parent = try Confined.openDirectory(root: root, components: Array(components.prefix(3))) else {
                return
            }
            defer { close(parent) }
            try Confined.removeTree(parent, context.name, path: path)
        }
    }
}
