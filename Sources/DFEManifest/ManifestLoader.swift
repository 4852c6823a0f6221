public import DFECore
public import Foundation
import Synchronization

/// Loads every manifest below a directory and validates it strictly against the config.
public enum ManifestLoader {
    /// Every valid instance spec, sorted by name; or every problem found, located.
    public static func load(
        manifestsDirectory: URL, root: URL, config: WorkspaceConfig
    ) throws(ValidationFailure) -> [InstanceSpec] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: manifestsDirectory.path, isDirectory: &isDirectory),
            isDirectory.boolValue
        else {
            let path = WorkspaceFiles.relativePath(manifestsDirectory, to: root)
            throw ValidationFailure([
                Diagnostic(
                    "manifests directory does not exist (workspace root \(root.standardizedFileURL.path)); create it, pass --manifests DIR, or write an example workspace with `dfe init`",
                    at: .wholeFile(path))
            ])
        }
        let (files, unreadable) = WorkspaceFiles.yamlFiles(below: manifestsDirectory)
        if !unreadable.isEmpty {
            throw ValidationFailure(
                unreadable.map { url, reason in
                    Diagnostic(
                        "cannot read this manifests directory (\(reason)); its instances would look deleted, so nothing is done: fix its permissions",
                        at: .wholeFile(WorkspaceFiles.relativePath(url, to: root)))
                })
        }
        let results = Mutex([FileResult?](repeating: nil, count: files.count))
        DispatchQueue.concurrentPerform(iterations: files.count) { index in
            let result = loadFile(files[index], root: root, config: config)
            results.withLock { $0[index] = result }
        }
        var specs: [InstanceSpec] = []
        var diagnostics: [Diagnostic] = []
        var seen: [String: SourceLocation] = [:]
        for result in results.withLock({ $0 }) {
            guard let result else { continue }
            diagnostics += result.diagnostics
            for (spec, nameLocation) in result.specs {
                if let first = seen[spec.name] {
                    diagnostics.append(
                        Diagnostic(
                            "duplicate instance name '\(spec.name)': also defined at \(first); names must be unique across all manifests",
                            at: nameLocation))
                    continue
                }
                seen[spec.name] = nameLocation
                specs.append(spec)
            }
        }
        guard diagnostics.isEmpty else { throw ValidationFailure(diagnostics) }
        return specs.sorted { $0.name < $1.name }
    }

    struct FileResult: Sendable {
        var specs: [(InstanceSpec, SourceLocation)] = []
        var diagnostics: [Diagnostic] = []
    }

    static func loadFile(_ url: URL, root: URL, config: WorkspaceConfig) -> FileResult {
        let path = WorkspaceFiles.relativePath(url, to: root)
        var result = FileResult()
        switch WorkspaceFiles.read(url) {
        case .missing:
            result.diagnostics.append(Diagnostic("file disappeared while reading", at: .wholeFile(path)))
        case .tooLarge(let size):
            result.diagnostics.append(
                Diagnostic("file is \(size) bytes; the limit is 1 MiB: split it", at: .wholeFile(path)))
        case .unreadable(let why):
            result.diagnostics.append(Diagnostic(why, at: .wholeFile(path)))
        case .text(let text):
            let parsed = YAMLDocuments.parse(text, path: path)
            result.diagnostics += parsed.diagnostics
            for document in parsed.documents {
                var reader = SchemaReader()
                if let spec = instance(document, config: config, reader: &reader) { result.specs.append(spec) }
                result.diagnostics += reader.diagnostics
            }
        }
        return result
    }

    /// Validates one document; returns the spec and its name's location when it is valid.
    static func instance(_ node: YNode, config: WorkspaceConfig, reader: inout SchemaReader) -> (
        InstanceSpec, SourceLocation
    )? {
        let before = reader.diagnostics.count
        if let foreign = foreignObject(node) {
            reader.error(foreign, at: node.location)
            return nil
        }
        guard let top = reader.mapping(node, what: "manifest", allowed: ["apiVersion", "kind", "metadata", "spec"])
        else { return nil }
        if let apiVersion = top["apiVersion"] {
            if let text = reader.string(apiVersion, what: "apiVersion"), text != "dfe/v1" {
                reader.error("unsupported apiVersion '\(text)'; use dfe/v1", at: apiVersion.location)
            }
        } else {
            reader.error("missing 'apiVersion: dfe/v1'", at: node.location)
        }
        if let kind = top["kind"] {
            if let text = reader.string(kind, what: "kind"), text != "Instance" {
                reader.error("unknown kind '\(text)'; the only kind is Instance", at: kind.location)
            }
        } else {
            reader.error("missing 'kind: Instance'", at: node.location)
        }
        var name: String?
        var nameLocation = node.location
        var labels: [String: String] = [:]
        if let metadata = top["metadata"],
            let meta = reader.mapping(metadata, what: "metadata", allowed: ["name", "labels"])
        {
            if let nameNode = meta["name"], let text = reader.string(nameNode, what: "metadata.name") {
                nameLocation = nameNode.location
                if !InstanceName.isValid(text) {
                    reader.error(
                        "invalid name '\(text)': must be a DNS label (lower-case letters, digits and '-', 1 to 63 characters, starting and ending with a letter or digit)",
                        at: nameNode.location)
                } else if config.settings.forbiddenNames.contains(text) {
                    reader.error(
                        "name '\(text)' is forbidden by config/dfe.yaml (naming.forbidden); choose another",
                        at: nameNode.location)
                } else {
                    name = text
                }
            } else if meta["name"] == nil {
                reader.error("missing metadata.name", at: metadata.location)
            }
            if let labelsNode = meta["labels"] { labels = reader.stringMap(labelsNode, what: "metadata.labels") ?? [:] }
        } else if top["metadata"] == nil {
            reader.error("missing 'metadata' with a name", at: node.location)
        }
        guard let specNode = top["spec"] else {
            reader.error("missing 'spec' (at least spec.owner)", at: node.location)
            return nil
        }
        let specAllowed: Set<String> = [
            "owner", "provisioner", "offerings", "state", "storage", "database", "protect", "suspend", "driftPolicy",
        ]
        guard let spec = reader.mapping(specNode, what: "spec", allowed: specAllowed) else { return nil }
        var owner: String?
        if let ownerNode = spec["owner"] {
            owner = reader.string(ownerNode, what: "spec.owner")
        } else {
            reader.error("missing spec.owner: the owner's email decides the storage partition", at: specNode.location)
        }
        var hostName = config.provisioners.defaultHost
        var hostLocation = specNode.location
        if let provisionerNode = spec["provisioner"],
            let text = reader.string(provisionerNode, what: "spec.provisioner")
        {
            hostName = text
            hostLocation = provisionerNode.location
        }
        let host = config.provisioners.hosts[hostName]
        if host == nil {
            let known = config.provisioners.hosts.keys.sorted().joined(separator: ", ")
            reader.error("unknown provisioner '\(hostName)'; configured hosts: \(known)", at: hostLocation)
        }
        var offerings: [String: String] = [:]
        if let offeringsNode = spec["offerings"],
            let map = reader.mapping(offeringsNode, what: "spec.offerings", allowed: nil)
        {
            for (key, valueNode) in map.sorted(by: { $0.key < $1.key }) {
                guard let value = reader.string(valueNode, what: "spec.offerings.\(key)") else { continue }
                guard let host else { continue }
                guard let offering = host.offerings[key] else {
                    let known = host.offerings.keys.sorted().joined(separator: ", ")
                    reader.error(
                        "host '\(host.name)' offers no '\(key)'; offerings: \(known.isEmpty ? "none" : known)",
                        at: valueNode.location)
                    continue
                }
                guard offering.items[value] != nil else {
                    reader.error(
                        "'\(value)' is not offered for \(key) by host '\(host.name)'; choose one of: \(offering.items.keys.sorted().joined(separator: ", "))",
                        at: valueNode.location)
                    continue
                }
                offerings[key] = value
            }
        }
        if let host {
            for (key, offering) in host.offerings where offerings[key] == nil { offerings[key] = offering.suggested }
        }
        var state = PlatformState.active
        if let node = spec["state"],
            let text = reader.choice(node, what: "spec.state", from: PlatformState.allCases.map(\.rawValue))
        {
            state = PlatformState(rawValue: text) ?? .active
        }
        var quota: Int64?
        var storagePolicy = DeletionPolicy.retain
        if let node = spec["storage"],
            let map = reader.mapping(node, what: "spec.storage", allowed: ["quota", "deletionPolicy"])
        {
            if let quotaNode = map["quota"], let text = reader.string(quotaNode, what: "spec.storage.quota") {
                if let bytes = Quantity.parse(text), bytes > 0 {
                    quota = bytes
                } else if Quantity.parse(text) == 0 {
                    reader.error(
                        "invalid quota '\(text)': a quota must be more than zero; remove spec.storage.quota for no limit",
                        at: quotaNode.location)
                } else {
                    reader.error(
                        "invalid quota '\(text)': use a whole number with Ki, Mi, Gi or Ti, e.g. 5Gi",
                        at: quotaNode.location)
                }
            }
            if let policyNode = map["deletionPolicy"] {
                storagePolicy = policy(policyNode, what: "spec.storage.deletionPolicy", reader: &reader)
            }
        }
        var databasePolicy = DeletionPolicy.retain
        if let node = spec["database"],
            let map = reader.mapping(node, what: "spec.database", allowed: ["deletionPolicy"])
        {
            if let policyNode = map["deletionPolicy"] {
                databasePolicy = policy(policyNode, what: "spec.database.deletionPolicy", reader: &reader)
            }
        }
        let protect = spec["protect"].flatMap { reader.bool($0, what: "spec.protect") } ?? false
        let suspend = spec["suspend"].flatMap { reader.bool($0, what: "spec.suspend") } ?? false
        var driftPolicy = config.settings.driftPolicy
        if let node = spec["driftPolicy"],
            let text = reader.choice(node, what: "spec.driftPolicy", from: DriftPolicy.allCases.map(\.rawValue))
        {
            driftPolicy = DriftPolicy(rawValue: text) ?? driftPolicy
        }
        guard reader.diagnostics.count == before, let name, let owner else { return nil }
        let result = InstanceSpec(
            name: name, labels: labels, owner: owner, provisioner: hostName, offerings: offerings, state: state,
            storageQuota: quota, storageDeletionPolicy: storagePolicy, databaseDeletionPolicy: databasePolicy,
            protect: protect, suspend: suspend, driftPolicy: driftPolicy, source: node.location)
        return (result, nameLocation)
    }

    /// "not a dfe manifest (apiVersion v1, kind ConfigMap)" for a document that is some other kind of object
    /// (a Kubernetes object, say): one error instead of one per missing or unknown field.
    static func foreignObject(_ node: YNode) -> String? {
        guard case .mapping(let pairs) = node.value else { return nil }
        var apiVersion: String?
        var kind: String?
        for (key, value) in pairs {
            guard case .scalar(let name, _) = key.value, case .scalar(let text, _) = value.value else { continue }
            if name == "apiVersion" { apiVersion = text }
            if name == "kind" { kind = text }
        }
        guard let apiVersion, let kind, !apiVersion.hasPrefix("dfe/"), kind != "Instance" else { return nil }
        return
            "not a dfe manifest (apiVersion \(apiVersion), kind \(kind)); dfe reads only apiVersion dfe/v1, kind Instance: move other files out of the manifests directory"
    }

    static func policy(_ node: YNode, what: String, reader: inout SchemaReader) -> DeletionPolicy {
        guard let text = reader.choice(node, what: what, from: DeletionPolicy.allCases.map(\.rawValue)) else {
            return .retain
        }
        return DeletionPolicy(rawValue: text) ?? .retain
    }
}
