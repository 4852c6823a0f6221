/// A scalar option value from config, with where it was written.
public struct OptionValue: Sendable, Hashable {
    public var text: String
    public var location: SourceLocation

    public init(_ text: String, at location: SourceLocation) {
        self.text = text
        self.location = location
    }
}

/// A driver chosen for one portable type of a host, with its options.
public struct DriverReference: Sendable, Hashable {
    public var driver: String
    public var options: [String: OptionValue]
    public var location: SourceLocation

    public init(driver: String, options: [String: OptionValue] = [:], location: SourceLocation) {
        self.driver = driver
        self.options = options
        self.location = location
    }
}

/// One offering of a host: a choice offered to instances, such as a version.
public struct Offering: Sendable, Hashable {
    public var key: String
    public var name: String
    public var suggested: String
    /// Offered values and their descriptions.
    public var items: [String: String]
    /// Per offered value, the environment variables it adds to the instance's `.env` (`env:` of the item).
    public var env: [String: [String: String]]

    public init(
        key: String, name: String, suggested: String, items: [String: String], env: [String: [String: String]] = [:]
    ) {
        self.key = key
        self.name = name
        self.suggested = suggested
        self.items = items
        self.env = env
    }
}

/// A named provisioning contract: one driver per portable type, offerings and a resource URI.
public struct HostConfig: Sendable, Hashable {
    public var name: String
    public var provides: [ResourceKind: DriverReference]
    public var offerings: [String: Offering]
    public var resourceURI: String
    public var location: SourceLocation

    public init(
        name: String, provides: [ResourceKind: DriverReference], offerings: [String: Offering], resourceURI: String,
        location: SourceLocation
    ) {
        self.name = name
        self.provides = provides
        self.offerings = offerings
        self.resourceURI = resourceURI
        self.location = location
    }
}

/// `config/provisioners.yaml`.
public struct ProvisionersConfig: Sendable, Hashable {
    public var defaultHost: String
    public var hosts: [String: HostConfig]

    public init(defaultHost: String, hosts: [String: HostConfig]) {
        self.defaultHost = defaultHost
        self.hosts = hosts
    }
}

/// `config/dfe.yaml`: naming rules, defaults and controller settings.
public struct Settings: Sendable, Hashable {
    /// Instance names that may never be used (e.g. `www`, `admin`).
    public var forbiddenNames: Set<String>
    public var parallelism: Int
    public var prune: Bool
    public var controllerInterval: Duration
    public var listen: String
    public var backoff: Backoff
    /// The drift policy of manifests that give none (`driftPolicy`).
    public var driftPolicy: DriftPolicy
    /// The most instances one run may prune (`maxPrune`); nil: no limit.
    public var maxPrune: Int?
    /// Webhooks the controller notifies (`notifications:`).
    public var notifications: [NotificationTarget] = []

    public init(
        forbiddenNames: Set<String> = ["admin", "api", "dfe", "localhost", "www"], parallelism: Int = 4,
        prune: Bool = false, controllerInterval: Duration = .seconds(60), listen: String = "127.0.0.1:9420",
        backoff: Backoff = Backoff(), driftPolicy: DriftPolicy = .repair, maxPrune: Int? = nil
    ) {
        self.forbiddenNames = forbiddenNames
        self.parallelism = parallelism
        self.prune = prune
        self.controllerInterval = controllerInterval
        self.listen = listen
        self.backoff = backoff
        self.driftPolicy = driftPolicy
        self.maxPrune = maxPrune
    }
}

/// Everything read from the config directory.
public struct WorkspaceConfig: Sendable, Hashable {
    public var provisioners: ProvisionersConfig
    public var settings: Settings

    public init(provisioners: ProvisionersConfig, settings: Settings) {
        self.provisioners = provisioners
        self.settings = settings
    }
}

/// A located problem in a manifest or config file.
public struct Diagnostic: Sendable, Hashable, Error, CustomStringConvertible, Comparable {
    public var location: SourceLocation
    public var message: String

    public init(_ message: String, at location: SourceLocation) {
        self.location = location
        self.message = message
    }

    /// `PATH:LINE:COLUMN: error: MESSAGE`.
    public var description: String { "\(location): error: \(message)" }

    public static func < (lhs: Diagnostic, rhs: Diagnostic) -> Bool {
        (lhs.location.path, lhs.location.line, lhs.location.column, lhs.message)
            < (rhs.location.path, rhs.location.line, rhs.location.column, rhs.message)
    }
}

/// One or more diagnostics that abort a run before anything is touched.
public struct ValidationFailure: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [Diagnostic]

    public init(_ diagnostics: [Diagnostic]) { self.diagnostics = diagnostics.sorted() }

    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}
