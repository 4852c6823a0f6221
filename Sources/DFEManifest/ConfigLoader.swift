public import DFECore
public import Foundation

/// Loads `provisioners.yaml` and `dfe.yaml` from a config directory, reporting every problem located.
public enum ConfigLoader {
    /// Reads and validates the workspace config; throws every diagnostic at once.
    public static func load(configDirectory: URL, root: URL) throws(ValidationFailure) -> WorkspaceConfig {
        var diagnostics: [Diagnostic] = []
        let provisionersURL = configDirectory.appendingPathComponent("provisioners.yaml")
        let settingsURL = configDirectory.appendingPathComponent("dfe.yaml")
        let provisioners = loadProvisioners(provisionersURL, root: root, diagnostics: &diagnostics)
        let settings = loadSettings(settingsURL, root: root, diagnostics: &diagnostics)
        guard diagnostics.isEmpty, let provisioners else { throw ValidationFailure(diagnostics) }
        return WorkspaceConfig(provisioners: provisioners, settings: settings)
    }

    static func document(_ url: URL, root: URL, required: Bool, diagnostics: inout [Diagnostic]) -> YNode? {
        let path = WorkspaceFiles.relativePath(url, to: root)
        switch WorkspaceFiles.read(url) {
        case .missing:
            if required {
                diagnostics.append(
                    Diagnostic(
                        "config file is missing (workspace root \(root.standardizedFileURL.path)); create it, pass --config DIR, or write an example workspace with `dfe init`",
                        at: .wholeFile(path)))
            }
            return nil
        case .tooLarge(let size):
            diagnostics.append(Diagnostic("file is \(size) bytes; the limit is 1 MiB", at: .wholeFile(path)))
            return nil
        case .unreadable(let why):
            diagnostics.append(Diagnostic(why, at: .wholeFile(path)))
            return nil
        case .text(let text):
            let parsed = YAMLDocuments.parse(text, path: path)
            diagnostics += parsed.diagnostics
            if parsed.documents.count > 1 {
                diagnostics.append(
                    Diagnostic(
                        "expected one YAML document, found \(parsed.documents.count)", at: parsed.documents[1].location)
                )
            }
            if parsed.documents.isEmpty, parsed.diagnostics.isEmpty, required {
                diagnostics.append(Diagnostic("config file is empty", at: .wholeFile(path)))
            }
            return parsed.documents.first
        }
    }

    static func loadProvisioners(_ url: URL, root: URL, diagnostics: inout [Diagnostic]) -> ProvisionersConfig? {
        guard let node = document(url, root: root, required: true, diagnostics: &diagnostics) else { return nil }
        var reader = SchemaReader()
        defer { diagnostics += reader.diagnostics }
        guard let top = reader.mapping(node, what: "provisioners config", allowed: ["default", "hosts"]) else {
            return nil
        }
        guard let hostsNode = top["hosts"] else {
            reader.error("missing 'hosts'", at: node.location)
            return nil
        }
        var hosts: [String: HostConfig] = [:]
        if let hostMap = reader.mapping(hostsNode, what: "hosts", allowed: nil) {
            for (name, hostNode) in hostMap.sorted(by: { $0.key < $1.key }) {
                if let host = parseHost(name, hostNode, reader: &reader) { hosts[name] = host }
            }
        }
        var defaultHost = hosts.count == 1 ? hosts.keys.first ?? "" : ""
        if let node = top["default"], let name = reader.string(node, what: "default") {
            defaultHost = name
            if hostsNode.isMapping, hosts[name] == nil {
                reader.error("default host '\(name)' is not defined under 'hosts'", at: node.location)
            }
        } else if top["default"] == nil, hosts.count != 1 {
            reader.error(
                "missing 'default': name the host manifests use when they give no provisioner", at: node.location)
        }
        return ProvisionersConfig(defaultHost: defaultHost, hosts: hosts)
    }

    static func parseHost(_ name: String, _ node: YNode, reader: inout SchemaReader) -> HostConfig? {
        guard
            let fields = reader.mapping(
                node, what: "host '\(name)'", allowed: ["provides", "offerings", "resource-uri"])
        else {
            return nil
        }
        var provides: [ResourceKind: DriverReference] = [:]
        if let providesNode = fields["provides"],
            let map = reader.mapping(
                providesNode, what: "host '\(name)' provides", allowed: Set(ResourceKind.allCases.map(\.rawValue)))
        {
            for (kindName, driverNode) in map {
                guard let kind = ResourceKind(rawValue: kindName) else { continue }
                if let reference = parseDriver(driverNode, what: "\(name).provides.\(kindName)", reader: &reader) {
                    provides[kind] = reference
                }
            }
            for kind in ResourceKind.allCases where map[kind.rawValue] == nil {
                reader.error("host '\(name)' provides no \(kind.rawValue) driver", at: providesNode.location)
            }
        } else if fields["provides"] == nil {
            reader.error("host '\(name)' is missing 'provides'", at: node.location)
        }
        var offerings: [String: Offering] = [:]
        if let offeringsNode = fields["offerings"],
            let map = reader.mapping(offeringsNode, what: "host '\(name)' offerings", allowed: nil)
        {
            for (key, offeringNode) in map.sorted(by: { $0.key < $1.key }) {
                if let offering = parseOffering(key, offeringNode, reader: &reader) { offerings[key] = offering }
            }
        }
        var resourceURI = "/api/v2/system/"
        if let uriNode = fields["resource-uri"], let uri = reader.string(uriNode, what: "resource-uri") {
            if uri.hasPrefix("/") {
                resourceURI = uri
            } else {
                reader.error("resource-uri must be an absolute path such as /api/v2/system/", at: uriNode.location)
            }
        }
        return HostConfig(
            name: name, provides: provides, offerings: offerings, resourceURI: resourceURI, location: node.location)
    }

    static func parseDriver(_ node: YNode, what: String, reader: inout SchemaReader) -> DriverReference? {
        if case .scalar = node.value {
            guard let driver = reader.string(node, what: what) else { return nil }
            return DriverReference(driver: driver, location: node.location)
        }
        guard let map = reader.mapping(node, what: what, allowed: nil) else { return nil }
        guard let driverNode = map["driver"] else {
            reader.error("\(what) is missing 'driver'", at: node.location)
            return nil
        }
        guard let driver = reader.string(driverNode, what: "\(what).driver") else { return nil }
        var options: [String: OptionValue] = [:]
        for (key, value) in map where key != "driver" {
            if let text = reader.string(value, what: "\(what).\(key)", allowEmpty: true) {
                options[key] = OptionValue(text, at: value.location)
            }
        }
        return DriverReference(driver: driver, options: options, location: driverNode.location)
    }

    static func parseOffering(_ key: String, _ node: YNode, reader: inout SchemaReader) -> Offering? {
        guard let map = reader.mapping(node, what: "offering '\(key)'", allowed: ["name", "suggested", "items"]) else {
            return nil
        }
        var items: [String: String] = [:]
        var env: [String: [String: String]] = [:]
        if let itemsNode = map["items"],
            let itemMap = reader.mapping(itemsNode, what: "offering '\(key)' items", allowed: nil)
        {
            for (value, itemNode) in itemMap {
                switch itemNode.value {
                case .mapping:
                    let item = reader.mapping(itemNode, what: "item '\(value)'", allowed: ["description", "env"])
                    items[value] =
                        item?["description"].flatMap { reader.string($0, what: "description", allowEmpty: true) } ?? ""
                    if let envNode = item?["env"] {
                        env[value] = parseEnv(envNode, what: "item '\(value)' env", reader: &reader)
                    }
                case .scalar(let text, _):
                    items[value] = text
                case .sequence:
                    reader.error("item '\(value)' must be a mapping with a description", at: itemNode.location)
                }
            }
        } else if map["items"] == nil {
            reader.error("offering '\(key)' is missing 'items'", at: node.location)
        }
        guard let suggestedNode = map["suggested"] else {
            reader.error("offering '\(key)' is missing 'suggested'", at: node.location)
            return nil
        }
        guard let suggested = reader.string(suggestedNode, what: "suggested") else { return nil }
        if !items.isEmpty, items[suggested] == nil {
            reader.error(
                "suggested '\(suggested)' is not one of the items: \(items.keys.sorted().joined(separator: ", "))",
                at: suggestedNode.location)
        }
        let name = map["name"].flatMap { reader.string($0, what: "name") } ?? key
        return Offering(key: key, name: name, suggested: suggested, items: items, env: env)
    }

    /// An offering item's `env:` map: variable names `^[A-Z_][A-Z0-9_]*$`, not one dfe writes itself, and values
    /// that every dotenv parser reads back the same.
    static func parseEnv(_ node: YNode, what: String, reader: inout SchemaReader) -> [String: String] {
        guard let pairs = reader.mapping(node, what: what, allowed: nil) else { return [:] }
        var result: [String: String] = [:]
        for (name, valueNode) in pairs.sorted(by: { $0.key < $1.key }) {
            guard DotEnv.isValidKey(name) else {
                reader.error(
                    "\(what): '\(name)' is not a valid variable name (use ^[A-Z_][A-Z0-9_]*$)", at: valueNode.location)
                continue
            }
            guard !DotEnv.managedKeys.contains(name) else {
                reader.error(
                    "\(what): '\(name)' is written by dfe itself and cannot be set here", at: valueNode.location)
                continue
            }
            guard let text = reader.string(valueNode, what: "\(what).\(name)", allowEmpty: true) else { continue }
            if let problem = DotEnv.problem(with: text) {
                reader.error("\(what).\(name): cannot be written to .env: \(problem)", at: valueNode.location)
                continue
            }
            result[name] = text
        }
        return result
    }

    static func loadSettings(_ url: URL, root: URL, diagnostics: inout [Diagnostic]) -> Settings {
        var settings = Settings()
        guard let node = document(url, root: root, required: false, diagnostics: &diagnostics) else { return settings }
        var reader = SchemaReader()
        defer { diagnostics += reader.diagnostics }
        let allowed: Set<String> = [
            "naming", "parallelism", "prune", "controller", "backoff", "driftPolicy", "maxPrune", "notifications",
        ]
        guard let top = reader.mapping(node, what: "dfe config", allowed: allowed) else { return settings }
        if let naming = top["naming"], let map = reader.mapping(naming, what: "naming", allowed: ["forbidden"]) {
            if let forbidden = map["forbidden"] {
                if case .sequence(let items) = forbidden.value {
                    settings.forbiddenNames = Set(items.compactMap { reader.string($0, what: "forbidden name") })
                } else {
                    reader.error("naming.forbidden must be a list of names", at: forbidden.location)
                }
            }
        }
        if let node = top["parallelism"], let value = reader.int(node, what: "parallelism") {
            if (1...256).contains(value) {
                settings.parallelism = value
            } else {
                reader.error("parallelism must be between 1 and 256", at: node.location)
            }
        }
        if let node = top["prune"], let value = reader.bool(node, what: "prune") { settings.prune = value }
        if let node = top["driftPolicy"],
            let text = reader.choice(node, what: "driftPolicy", from: DriftPolicy.allCases.map(\.rawValue))
        {
            settings.driftPolicy = DriftPolicy(rawValue: text) ?? .repair
        }
        if let node = top["maxPrune"], let value = reader.int(node, what: "maxPrune") {
            if value >= 0 {
                settings.maxPrune = value
            } else {
                reader.error("maxPrune must be 0 or more (the most instances one run may prune)", at: node.location)
            }
        }
        if let node = top["notifications"] { settings.notifications = notifications(node, root: root, reader: &reader) }
        if let node = top["controller"],
            let map = reader.mapping(node, what: "controller", allowed: ["interval", "listen"])
        {
            if let interval = map["interval"] {
                settings.controllerInterval =
                    duration(interval, what: "controller.interval", reader: &reader) ?? settings.controllerInterval
            }
            if let listen = map["listen"], let text = reader.string(listen, what: "controller.listen") {
                if let problem = listenProblem(text) {
                    reader.error("controller.listen \(problem)", at: listen.location)
                } else {
                    settings.listen = text
                }
            }
        }
        if let node = top["backoff"], let map = reader.mapping(node, what: "backoff", allowed: ["initial", "max"]) {
            if let initial = map["initial"] {
                settings.backoff.initial =
                    duration(initial, what: "backoff.initial", reader: &reader) ?? settings.backoff.initial
            }
            if let max = map["max"] {
                settings.backoff.maximum =
                    duration(max, what: "backoff.max", reader: &reader) ?? settings.backoff.maximum
            }
        }
        return settings
    }

    /// Why a listen address is not `HOST:PORT` with a port from 1 to 65535 (nil when it is).
    static func listenProblem(_ text: String) -> String? {
        if let port = Int(text) {
            return
                "must be HOST:PORT, found a port alone ('\(text)'); write 127.0.0.1:\(port) (this host only) or 0.0.0.0:\(port) (every interface)"
        }
        guard let colon = text.lastIndex(of: ":") else {
            return "must be HOST:PORT, e.g. 127.0.0.1:9420; found '\(text)'"
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let portText = text[text.index(after: colon)...]
        guard !host.isEmpty, !host.contains(where: { $0 == " " || $0 == "/" }) else {
            return "must be HOST:PORT with a host, e.g. 127.0.0.1:9420; found '\(text)'"
        }
        guard let port = Int(portText), (1...65535).contains(port) else {
            return "has no valid port in '\(text)': the port must be a number from 1 to 65535, e.g. 127.0.0.1:9420"
        }
        return nil
    }

    static func duration(_ node: YNode, what: String, reader: inout SchemaReader) -> Duration? {
        guard let text = reader.string(node, what: what) else { return nil }
        guard let value = DurationText.parse(text), value > .zero else {
            reader.error("\(what) must be a duration such as 500ms, 2s, 5m or 1h; found '\(text)'", at: node.location)
            return nil
        }
        return value
    }
}

extension YNode {
    var isMapping: Bool {
        if case .mapping = value { return true }
        return false
    }
}
