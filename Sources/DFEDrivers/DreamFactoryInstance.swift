public import DFECore
public import DFEProvision
import Foundation

/// `instance/dreamfactory`: writes the metadata document `ROOT/NAME/instance.json` and the environment file
/// `ROOT/NAME/.env` that the instance reads.
///
/// Both are written atomically (temp file created 0600 + fsync + rename). The app key (client id and secret)
/// and Laravel's `APP_KEY` are generated once and kept stable across runs, re-read from state or from the
/// existing files.
public struct DreamFactoryInstanceProvisioner: InstanceProvisioner {
    public let driverName = "dreamfactory"
    public let root: String
    public let domain: String

    public init(root: String, domain: String) {
        self.root = root
        self.domain = domain
    }

    /// Builds the driver from `{root, domain}` options.
    public static func make(_ options: DriverOptions, _ environment: DriverEnvironment) throws
        -> DreamFactoryInstanceProvisioner
    {
        try options.allow(["root", "domain"])
        let domain = options.optional("domain") ?? "dfe.localhost"
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        guard !labels.isEmpty, labels.allSatisfy({ InstanceName.isValid(String($0)) }) else {
            throw options.error("domain", "domain '\(domain)' is not a valid DNS name")
        }
        return DreamFactoryInstanceProvisioner(
            root: environment.resolve(options.optional("root") ?? "var/instances").path, domain: domain)
    }

    static let storageKeys = ["path", "privatePath", "ownerPrivatePath", "snapshotPath", "quota"]
    /// Database outputs that belong in the document (drivers may record more for themselves).
    static let databaseKeys: Set<String> = ["driver", "path", "host", "port", "name", "username", "password"]

    /// A digest of the dependency outputs the document is rendered from.
    static func dependencyDigest(_ context: ResourceContext) -> String {
        var values: [String: String] = [:]
        for key in storageKeys { values["storage.\(key)"] = context.dependencies[.storage]?[key] }
        for (key, value) in context.dependencies[.database] ?? [:] where databaseKeys.contains(key) {
            values["database.\(key)"] = value
        }
        return FieldSet(values).hash
    }

    public func fields(for spec: InstanceSpec, host: HostConfig, dependencies: [ResourceKind: FieldSet]) -> FieldSet {
        var fields = FieldSet([
            "name": spec.name,
            "owner": spec.owner,
            "endpoint": "https://\(spec.name).\(domain)",
            "resourceUri": host.resourceURI,
            "platformState": spec.state.rawValue,
            "metadataPath": metadataPath(spec.name),
        ])
        for (key, value) in spec.offerings { fields["offerings.\(key)"] = value }
        for (key, value) in spec.labels { fields["labels.\(key)"] = value }
        for key in Self.storageKeys {
            if let value = dependencies[.storage]?[key] { fields["storage.\(key)"] = value }
        }
        for (key, value) in dependencies[.database]?.values ?? [:] where !Sensitive.isSensitive(key) {
            fields["database.\(key)"] = value
        }
        for (key, value) in spec.offerings {
            for (name, text) in host.offerings[key]?.env[value] ?? [:] { fields["env.\(name)"] = text }
        }
        return fields
    }

    func metadataPath(_ name: String) -> String { "\(root)/\(name)/instance.json" }

    func envPath(_ name: String) -> String { "\(root)/\(name)/.env" }

    /// Laravel's `DB_CONNECTION` for a database driver.
    static func connectionName(_ driver: String) -> String {
        switch driver {
        case "postgres": "pgsql"
        default: driver
        }
    }

    /// The `.env` entries in file order: dfe's own keys, then the chosen offerings' `env:` keys sorted.
    func envEntries(_ context: ResourceContext, appKey: String) -> [(key: String, value: String)] {
        let fields = context.fields
        let storage = context.dependencies[.storage] ?? [:]
        let database = context.dependencies[.database] ?? [:]
        var entries: [(key: String, value: String)] = [
            ("APP_NAME", context.name),
            ("APP_ENV", "production"),
            ("APP_DEBUG", "false"),
            ("APP_KEY", appKey),
            ("APP_URL", fields["endpoint"] ?? ""),
            ("DB_CONNECTION", Self.connectionName(database["driver"] ?? "")),
        ]
        if database["host"] != nil {
            entries.append(("DB_HOST", database["host"] ?? ""))
            entries.append(("DB_PORT", database["port"] ?? ""))
            entries.append(("DB_DATABASE", database["name"] ?? ""))
            entries.append(("DB_USERNAME", database["username"] ?? ""))
            entries.append(("DB_PASSWORD", database["password"] ?? ""))
        } else {
            entries.append(("DB_DATABASE", database["path"] ?? ""))
        }
        let privatePath = storage["privatePath"] ?? ""
        entries += [
            ("CACHE_STORE", "file"),
            ("CACHE_DRIVER", "file"),
            ("DF_MANAGED", "true"),
            ("DF_MANAGED_STORAGE_PATH", storage["path"] ?? ""),
            ("DF_MANAGED_LOG_PATH", privatePath + "/logs"),
            ("DF_MANAGED_CACHE_PATH", privatePath + "/.cache"),
        ]
        for (key, value) in fields.values.sorted(by: { $0.key < $1.key }) where key.hasPrefix("env.") {
            entries.append((String(key.dropFirst(4)), value))
        }
        return entries
    }

    /// Renders the `.env` file, or a terminal error naming the variable that cannot be written.
    func renderEnv(_ context: ResourceContext, appKey: String) throws(DriverError) -> Data {
        switch DotEnv.render(envEntries(context, appKey: appKey)) {
        case .success(let text): return Data(text.utf8)
        case .failure(let error): throw DriverError("cannot write .env: \(error)", retryable: false)
        }
    }

    /// A new Laravel application key: `base64:` and 32 random bytes.
    static func generateAppKey() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return "base64:" + Data(bytes).base64EncodedString()
    }

    /// Whether `key` is a well-formed Laravel key: `base64:` and 32 bytes.
    static func isAppKey(_ key: String) -> Bool {
        guard key.hasPrefix("base64:"), let data = Data(base64Encoded: String(key.dropFirst(7))) else { return false }
        return data.count == 32
    }

    /// `APP_KEY` from state, else from the existing `.env` (adoption), else nil.
    func existingLaravelKey(_ context: ResourceContext) -> String? {
        if let key = context.recorded?.outputs["appKeySecret"], Self.isAppKey(key) { return key }
        guard FileSystem.entry(envPath(context.name)) == .file,
            let data = FileManager.default.contents(atPath: envPath(context.name)),
            let text = String(data: data, encoding: .utf8), let key = DotEnv.parse(text)["APP_KEY"], Self.isAppKey(key)
        else { return nil }
        return key
    }

    /// The stable instance id derived from its name.
    static func instanceID(_ name: String) -> String { "dfe-" + SHA256.hex("instance:" + name).prefix(16) }

    /// Renders the metadata document from desired fields, dependency outputs and the app key.
    func render(_ context: ResourceContext, appKey: (id: String, secret: String)) -> Data {
        let fields = context.fields
        var offerings: [String: JSONText.Value] = [:]
        var labels: [String: JSONText.Value] = [:]
        for (key, value) in fields.values {
            if key.hasPrefix("offerings.") { offerings[String(key.dropFirst(10))] = .string(value) }
            if key.hasPrefix("labels.") { labels[String(key.dropFirst(7))] = .string(value) }
        }
        let instance: [String: JSONText.Value] = [
            "name": .string(context.name),
            "id": .string(Self.instanceID(context.name)),
            "owner": .string(fields["owner"] ?? context.owner),
            "endpoint": .string(fields["endpoint"] ?? ""),
            "resourceUri": .string(fields["resourceUri"] ?? ""),
            "platformState": .string(fields["platformState"] ?? ""),
            "offerings": .object(offerings),
            "labels": .object(labels),
        ]
        var storage: [String: JSONText.Value] = [:]
        for key in Self.storageKeys {
            if let value = context.dependencies[.storage]?[key] { storage[key] = .string(value) }
        }
        var database: [String: JSONText.Value] = [:]
        for (key, value) in context.dependencies[.database] ?? [:] where Self.databaseKeys.contains(key) {
            database[key] = key == "port" ? .int(Int(value) ?? 0) : .string(value)
        }
        let document = JSONText.Value.object([
            "instance": .object(instance),
            "storage": .object(storage),
            "database": .object(database),
            "appKey": .object(["clientId": .string(appKey.id), "clientSecret": .string(appKey.secret)]),
        ])
        return Data(JSONText.render(document).utf8)
    }

    /// The app key from state, else from the existing document (adoption), else nil.
    func existingAppKey(_ context: ResourceContext) -> (id: String, secret: String)? {
        if let id = context.recorded?.outputs["clientId"], let secret = context.recorded?.outputs["clientSecret"] {
            return (id, secret)
        }
        guard let data = FileManager.default.contents(atPath: metadataPath(context.name)),
            let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let appKey = json["appKey"] as? [String: Any], let id = appKey["clientId"] as? String,
            let secret = appKey["clientSecret"] as? String, !id.isEmpty, !secret.isEmpty
        else { return nil }
        return (id, secret)
    }

    public func observe(_ context: ResourceContext) async throws -> ObservedStatus {
        let path = metadataPath(context.name)
        guard FileSystem.entry(path) == .file, let actual = FileManager.default.contents(atPath: path) else {
            return .missing
        }
        let document = observeDocument(context, actual: actual)
        guard document == .ok else { return document }
        return observeEnv(context)
    }

    /// Compares the `.env` with what was last written (or, without a record, with what would be written).
    func observeEnv(_ context: ResourceContext) -> ObservedStatus {
        let path = envPath(context.name)
        guard FileSystem.entry(path) == .file, let actual = FileManager.default.contents(atPath: path) else {
            return .drifted(".env missing")
        }
        if let digest = context.recorded?.outputs["envDigest"] {
            if SHA256.hexString(SHA256.digest(actual)) != digest { return .drifted(".env differs (edited by hand?)") }
        } else {
            guard let key = existingLaravelKey(context) else { return .drifted(".env has no APP_KEY") }
            guard let expected = try? renderEnv(context, appKey: key), expected == actual else {
                return .drifted(".env differs (edited by hand?)")
            }
        }
        if FileSystem.mode(path) != 0o600 { return .drifted(".env mode is not 0600") }
        return .ok
    }

    /// Compares the metadata document with what was last written.
    func observeDocument(_ context: ResourceContext, actual: Data) -> ObservedStatus {
        let path = metadataPath(context.name)
        // Cheap path: compare with the digest of what was last written, and the inputs it was rendered from.
        if let recorded = context.recorded?.outputs, let digest = recorded["documentDigest"],
            let dependencies = recorded["dependencyDigest"]
        {
            if SHA256.hexString(SHA256.digest(actual)) != digest {
                return .drifted("metadata document differs (edited by hand?)")
            }
            if dependencies != Self.dependencyDigest(context) {
                return .drifted("storage or database connection changed")
            }
            if FileSystem.mode(path) != 0o600 { return .drifted("metadata document mode is not 0600") }
            return .ok
        }
        guard let key = existingAppKey(context) else { return .drifted("metadata document has no app key") }
        if actual != render(context, appKey: key) { return .drifted("metadata document differs (edited by hand?)") }
        if FileSystem.mode(path) != 0o600 { return .drifted("metadata document mode is not 0600") }
        return .ok
    }

    public func apply(_ context: ResourceContext) async throws -> [String: String] {
        let key = existingAppKey(context) ?? ("dfe_" + FileSystem.randomHex(bytes: 12), FileSystem.randomHex(bytes: 32))
        let laravelKey = existingLaravelKey(context) ?? Self.generateAppKey()
        let document = render(context, appKey: key)
        let env = try renderEnv(context, appKey: laravelKey)
        let path = metadataPath(context.name)
        let envPath = envPath(context.name)
        let directory = "\(root)/\(context.name)"
        try await offloaded {
            try FileSystem.makeDirectory(directory, mode: 0o750)
            for (data, file) in [(env, envPath), (document, path)] {
                if FileSystem.entry(file) != .file || FileManager.default.contents(atPath: file) != data
                    || FileSystem.mode(file) != 0o600
                {
                    try FileSystem.writeAtomically(data, to: file, mode: 0o600)
                }
                unlink(FileSystem.temporaryPath(for: file))
            }
        }
        return [
            "driver": driverName, "endpoint": context.fields["endpoint"] ?? "", "metadataPath": path,
            "envPath": envPath, "clientId": key.id, "clientSecret": key.secret, "appKeySecret": laravelKey,
            "documentDigest": SHA256.hexString(SHA256.digest(document)),
            "envDigest": SHA256.hexString(SHA256.digest(env)),
            "dependencyDigest": Self.dependencyDigest(context),
        ]
    }

    public func delete(_ context: ResourceContext) async throws {
        let directory = "\(root)/\(context.name)"
        guard FileSystem.isBelow(directory, root: root) else {
            throw DriverError("refusing to delete \(directory): not below \(root)", retryable: false)
        }
        try await offloaded { try FileSystem.removeTree(directory) }
    }
}

/// The built-in drivers.
public enum BuiltinDrivers {
    /// A registry with `storage/local`, `database/sqlite` and `instance/dreamfactory`.
    public static func registry() -> DriverRegistry {
        var registry = DriverRegistry()
        registry.registerStorage("local") { options, environment in
            try LocalStorageProvisioner.make(options, environment)
        }
        registry.registerDatabase("sqlite") { options, environment in
            try SQLiteDatabaseProvisioner.make(options, environment)
        }
        registry.registerInstance("dreamfactory") { options, environment in
            try DreamFactoryInstanceProvisioner.make(options, environment)
        }
        return registry
    }
}
