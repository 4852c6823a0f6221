public import DFECore
public import DFEReconciler
public import Foundation

/// A throwaway workspace under the temp directory with a working config, removed on `remove()`.
public final class TemporaryWorkspace: Sendable {
    public let root: URL

    /// Creates `ROOT/config` with one sqlite-backed host and an empty `ROOT/manifests`.
    public init(prefix: String = "dfe-test", provisioners: String? = nil, settings: String? = nil) throws {
        let base = URL(fileURLWithPath: NSTemporaryDirectory(), isDirectory: true)
        root = base.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))", isDirectory: true)
        try FileManager.default.createDirectory(
            at: root.appendingPathComponent("manifests"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(
            at: root.appendingPathComponent("config"), withIntermediateDirectories: true)
        try write("config/provisioners.yaml", provisioners ?? Self.defaultProvisioners)
        try write("config/dfe.yaml", settings ?? Self.defaultSettings)
    }

    /// The embedded default config: storage/local, database/sqlite, instance/dreamfactory.
    public static let defaultProvisioners = """
        default: dreamfactory
        hosts:
          dreamfactory:
            provides:
              instance: {driver: dreamfactory, root: var/instances, domain: dfe.localhost}
              storage: {driver: local, root: var/storage, zone: local}
              database: {driver: sqlite, root: var/databases}
            offerings:
              instance-version:
                name: DreamFactory version
                suggested: "7.4"
                items:
                  "6.2": {description: old}
                  "7.4": {description: current}
            resource-uri: /api/v2/system/

        """

    /// Settings with a short backoff so tests never wait long.
    public static let defaultSettings = """
        naming:
          forbidden: [admin, www]
        parallelism: 4
        backoff: {initial: 5s, max: 5m}

        """

    public var workspace: Workspace { Workspace(root: root) }
    public var stateURL: URL { root.appendingPathComponent("var/state.sqlite") }

    /// Writes a file relative to the root, creating parents.
    public func write(_ path: String, _ text: String) throws {
        let url = root.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
    }

    /// Removes a file or directory relative to the root.
    public func remove(_ path: String) throws {
        try FileManager.default.removeItem(at: root.appendingPathComponent(path))
    }

    /// Whether a path relative to the root exists.
    public func exists(_ path: String) -> Bool {
        FileManager.default.fileExists(atPath: root.appendingPathComponent(path).path)
    }

    /// Reads a file relative to the root (or an absolute path).
    public func read(_ path: String) throws -> String {
        let url = path.hasPrefix("/") ? URL(fileURLWithPath: path) : root.appendingPathComponent(path)
        return try String(contentsOf: url, encoding: .utf8)
    }

    /// Writes one instance manifest as `manifests/NAME.yaml`.
    public func addInstance(_ name: String, owner: String = "ops@example.com", extra: String = "") throws {
        try write("manifests/\(name).yaml", Self.manifest(name, owner: owner, extra: extra))
    }

    /// A minimal valid manifest; `extra` is appended under `spec:` (indent it by two spaces).
    public static func manifest(_ name: String, owner: String = "ops@example.com", extra: String = "") -> String {
        """
        apiVersion: dfe/v1
        kind: Instance
        metadata:
          name: \(name)
        spec:
          owner: \(owner)
        \(extra)
        """
    }

    /// A digest of every path, mode and file content below the root: equal digests mean byte-identical trees.
    public func treeDigest() throws -> String {
        var lines: [String] = []
        let keys: [URLResourceKey] = [.isDirectoryKey, .isRegularFileKey]
        guard let enumerator = FileManager.default.enumerator(at: root, includingPropertiesForKeys: keys) else {
            return ""
        }
        for case let url as URL in enumerator {
            let path = String(url.path.dropFirst(root.path.count))
            let attributes = try FileManager.default.attributesOfItem(atPath: url.path)
            let mode = (attributes[.posixPermissions] as? Int) ?? 0
            var line = "\(path) \(String(mode, radix: 8))"
            if (attributes[.type] as? FileAttributeType) == .typeRegular {
                let data = try Data(contentsOf: url)
                line += " " + SHA256.hexString(SHA256.digest(data))
            }
            lines.append(line)
        }
        return SHA256.hex(lines.sorted().joined(separator: "\n"))
    }

    /// Every path below the root (relative), sorted.
    public func allPaths() -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: root.path) else { return [] }
        var paths: [String] = []
        while let path = enumerator.nextObject() as? String { paths.append(path) }
        return paths.sorted()
    }

    /// Deletes the workspace.
    public func delete() {
        try? FileManager.default.removeItem(at: root)
    }
}
