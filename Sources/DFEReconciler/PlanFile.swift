public import DFECore
import DFEManifest
public import Foundation

/// A plan saved by `dfe plan --out FILE` and applied by `dfe reconcile --plan FILE` (`"format": "dfe-plan/v1"`).
///
/// It binds each instance to exactly the changes reviewed: the desired and recorded spec hashes they were
/// planned against, and the changes themselves. It holds no secret: field values of secrets are masked.
public struct SavedPlan: Sendable, Hashable, Codable {
    public static let formatName = "dfe-plan/v1"

    /// One instance: its binding, plus the field changes a reviewer read (masked; not compared).
    public struct Instance: Sendable, Hashable, Codable {
        public var binding: InstanceBinding
        /// Per change (same order as the binding's), the fields it changes.
        public var fields: [[FieldChange]]

        public init(binding: InstanceBinding, fields: [[FieldChange]]) {
            self.binding = binding
            self.fields = fields
        }
    }

    public var format: String
    public var createdAt: String
    public var revision: String?
    /// The digest of the manifests and config the plan was made from (see `InputDigest`).
    public var inputs: String
    /// Whether resources were observed (`false`: planned from the recorded state alone, `--no-refresh`).
    public var refresh: Bool
    public var prune: Bool
    public var pruneAll: Bool
    public var summary: PlanSummary
    public var instances: [Instance]

    public init(
        createdAt: Date, revision: String?, inputs: String, refresh: Bool, prune: Bool, pruneAll: Bool,
        report: ReconcileReport
    ) {
        format = Self.formatName
        self.createdAt = ISO8601DateFormatter().string(from: createdAt)
        self.revision = revision
        self.inputs = inputs
        self.refresh = refresh
        self.prune = prune
        self.pruneAll = pruneAll
        summary = report.summary
        let plans = Dictionary(report.plan.instances.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        instances = report.bindings.map { binding in
            let changes = plans[binding.name]?.changes ?? []
            let fields = changes.map { change in
                change.fieldChanges.map { field in
                    FieldChange(
                        field: field.field, old: field.old.map { Sensitive.display(field.field, $0) },
                        new: field.new.map { Sensitive.display(field.field, $0) })
                }
            }
            return Instance(binding: binding, fields: fields)
        }
    }

    enum CodingKeys: String, CodingKey {
        case format, createdAt, revision, inputs, refresh, prune, pruneAll, summary, instances
    }

    /// Encodes every key; an unknown revision is written as `null`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(format, forKey: .format)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(revision, forKey: .revision)
        try container.encode(inputs, forKey: .inputs)
        try container.encode(refresh, forKey: .refresh)
        try container.encode(prune, forKey: .prune)
        try container.encode(pruneAll, forKey: .pruneAll)
        try container.encode(summary, forKey: .summary)
        try container.encode(instances, forKey: .instances)
    }

    /// The bindings by instance name.
    public var bindings: [String: InstanceBinding] {
        Dictionary(instances.map { ($0.binding.name, $0.binding) }, uniquingKeysWith: { first, _ in first })
    }

    /// The plan as pretty, key-sorted JSON with a trailing newline.
    public func encoded() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return ((try? encoder.encode(self)) ?? Data("{}".utf8)) + Data("\n".utf8)
    }

    /// Writes the plan atomically (a temporary file beside it, synced, renamed) with mode 0600.
    public func write(to url: URL) throws(PlanFileError) {
        let path = url.path
        let directory = url.deletingLastPathComponent().path
        let temp = directory + "/." + url.lastPathComponent + ".\(UUID().uuidString.prefix(8)).tmp"
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw .write(path, String(cString: strerror(errno))) }
        let data = encoded()
        var failure: String?
        data.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Foundation.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if written <= 0 {
                    failure = String(cString: strerror(errno))
                    return
                }
                offset += written
            }
        }
        fchmod(fd, 0o600)
        if failure == nil, fsync(fd) != 0 { failure = String(cString: strerror(errno)) }
        close(fd)
        if failure == nil, rename(temp, path) != 0 { failure = String(cString: strerror(errno)) }
        if let failure {
            unlink(temp)
            throw .write(path, failure)
        }
    }

    /// Reads and checks a saved plan.
    public static func read(from url: URL) throws(PlanFileError) -> SavedPlan {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw .read(url.path, "cannot read it: \((error as NSError).localizedDescription)")
        }
        if let probe = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let format = probe["format"] as? String, format != formatName
        {
            throw .read(url.path, "its format is '\(format)'; this dfe reads \(formatName)")
        }
        do {
            return try JSONDecoder().decode(SavedPlan.self, from: data)
        } catch {
            throw .read(url.path, "not a dfe plan (\(formatName)); make one with `dfe plan --out FILE`")
        }
    }
}

/// Reading or writing a plan file failed.
public enum PlanFileError: Error, Sendable, CustomStringConvertible {
    case read(String, String)
    case write(String, String)

    public var description: String {
        switch self {
        case .read(let path, let why): "plan file \(path): \(why)"
        case .write(let path, let why): "cannot write plan file \(path): \(why)"
        }
    }
}

/// A digest of a run's inputs: every manifest file and the config files, by content.
///
/// Canonical and independent of where the workspace lies: each file is named relative to its directory
/// (`manifests/acme/prod.yaml`, `config/dfe.yaml`), entries are sorted, and names and contents are
/// length-prefixed before hashing, so two trees have one digest exactly when they hold the same files.
public enum InputDigest {
    /// The digest (`sha256:HEX`) of the workspace's manifests and config.
    public static func of(_ workspace: Workspace) -> String {
        var entries: [(String, [UInt8])] = []
        let manifests = WorkspaceFiles.yamlFiles(below: workspace.manifests).files
        for url in manifests {
            let name = "manifests/" + WorkspaceFiles.relativePath(url, to: workspace.manifests)
            entries.append((name, content(url)))
        }
        for file in ["provisioners.yaml", "dfe.yaml"] {
            let url = workspace.config.appendingPathComponent(file)
            guard FileManager.default.fileExists(atPath: url.path) else { continue }
            entries.append(("config/" + file, content(url)))
        }
        return "sha256:" + digest(entries)
    }

    /// The canonical digest of named contents.
    static func digest(_ entries: [(String, [UInt8])]) -> String {
        var bytes: [UInt8] = []
        for (name, content) in entries.sorted(by: { $0.0 < $1.0 }) {
            bytes.append(contentsOf: "\(name.utf8.count):".utf8)
            bytes.append(contentsOf: name.utf8)
            bytes.append(contentsOf: "\(content.count):".utf8)
            bytes.append(contentsOf: SHA256.digest(content))
        }
        return SHA256.hexString(SHA256.digest(bytes))
    }

    static func content(_ url: URL) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: url.path) else { return Array("<unreadable>".utf8) }
        return Array(data)
    }
}
