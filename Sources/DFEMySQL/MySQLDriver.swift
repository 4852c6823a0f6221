public import DFECore
public import DFEProvision
import Foundation

/// Registers the `mysql` database driver (MySQL 8, MariaDB 10.11+).
public enum MySQLDriver {
    /// Adds the `mysql` database driver to `registry`.
    public static func register(into registry: inout DriverRegistry) {
        registry.registerDatabase("mysql") { options, environment in
            try MySQLDatabaseProvisioner(options: options, environment: environment)
        }
    }
}

/// Provisions one database and one user granted all privileges on it (and nothing else) per instance.
///
/// The database carries the ownership record in a `dfe_owner` table (instance, owner, state id, user); an
/// object at the computed name without a matching record is a conflict, never adopted, altered or dropped.
public struct MySQLDatabaseProvisioner: DatabaseProvisioner, CustomStringConvertible {
    /// Always `mysql`.
    public var driverName: String { "mysql" }

    /// Where the server is and how the admin logs in.
    let server: MySQLParameters
    /// Prefix of database and user names.
    let prefix: String
    /// The host part of every user account (`%` by default).
    let userHost: String

    static let optionNames: Set<String> = [
        "url", "passwordEnv", "passwordFile", "prefix", "userHost", "connectTimeout",
    ]

    /// Builds the driver from its options; throws a `Diagnostic` located at the offending option.
    public init(options: DriverOptions, environment: DriverEnvironment) throws {
        try options.allow(Self.optionNames)
        let url = try Self.parseURL(options.required("url"), options: options)
        let passwordEnv = options.optional("passwordEnv")
        let passwordFile = options.optional("passwordFile")
        var password: Secret?
        if passwordEnv != nil, passwordFile != nil {
            throw options.error("passwordFile", "use either passwordEnv or passwordFile, not both")
        }
        if let name = passwordEnv {
            guard let value = environment.environment[name], !value.isEmpty else {
                throw options.error(
                    "passwordEnv",
                    "config error: passwordEnv names environment variable '\(name)', which is unset or empty")
            }
            password = Secret(value)
        }
        if let path = passwordFile {
            password = try Self.readPasswordFile(path, options: options, environment: environment)
        }
        let prefix = options.optional("prefix") ?? "dfe_"
        guard MySQLSQL.isValidPrefix(prefix) else {
            throw options.error(
                "prefix",
                "prefix '\(prefix)' is invalid: it must match ^[a-z_][a-z0-9_]*$ (lowercase letters, digits, _) and be shorter than 32 characters"
            )
        }
        let userHost = options.optional("userHost") ?? "%"
        guard MySQLSQL.isValidUserHost(userHost) else {
            throw options.error(
                "userHost", "userHost '\(userHost)' is invalid: use %, localhost, an address or a host name pattern")
        }
        var timeout = 5
        if let text = options.optional("connectTimeout") {
            guard let duration = DurationText.parse(text), duration > .zero else {
                throw options.error("connectTimeout", "connectTimeout '\(text)' is not a positive duration such as 5s")
            }
            timeout = max(1, Int(duration.seconds.rounded(.up)))
        }
        self.prefix = prefix
        self.userHost = userHost
        self.server = MySQLParameters(
            host: url.host, port: url.port, user: url.user, password: password, database: nil,
            connectTimeoutSeconds: timeout)
    }

    /// Describes the driver without its admin password.
    public var description: String { "mysql(\(server.user)@\(server.host):\(server.port), prefix \(prefix))" }

    // MARK: - SubProvisioner

    /// The desired database and user of `spec` on this server; never a password (pure).
    public func fields(for spec: InstanceSpec, host: HostConfig, dependencies: [ResourceKind: FieldSet]) -> FieldSet {
        let name = objectName(for: spec.name)
        return FieldSet([
            "driver": "mysql", "host": server.host, "port": String(server.port), "name": name, "username": name,
            "userHost": userHost,
        ])
    }

    /// Database and user names are at most 32 characters (MySQL's user name limit).
    public func problems(for spec: InstanceSpec) -> [String] {
        let name = objectName(for: spec.name)
        guard !MySQLSQL.isValidName(name) else { return [] }
        return [
            "database and user name '\(name)' is longer than MySQL's 32 characters; shorten the instance name to at most \(MySQLSQL.maxNameLength - prefix.utf8.count) characters"
        ]
    }

    public func observe(_ context: ResourceContext) async throws -> ObservedStatus {
        let target = target(context)
        return try await offloaded { try self.observeBlocking(target) }
    }

    public func apply(_ context: ResourceContext) async throws -> [String: String] {
        let target = target(context)
        return try await offloaded { try self.applyBlocking(target) }
    }

    public func delete(_ context: ResourceContext) async throws {
        let target = target(context)
        try await offloaded { try self.deleteBlocking(target) }
    }

    // MARK: - Names and ownership

    /// The database and user name of an instance: prefix + name with `-` as `_`.
    func objectName(for instance: String) -> String { prefix + instance.replacingOccurrences(of: "-", with: "_") }

    /// What one call acts on: names, the record objects must carry, what the state remembers.
    struct Target: Sendable {
        var database: String
        var user: String
        var record: Owner
        var recordedPassword: String?
        /// Whether the state remembers this resource (so a user without its database is still ours).
        var recorded: Bool
    }

    /// The ownership record kept in the database's `dfe_owner` table.
    struct Owner: Sendable, Hashable {
        var instance: String
        /// Lowercased: owners compare case-insensitively.
        var owner: String
        var stateID: String?
    }

    func target(_ context: ResourceContext) -> Target {
        let outputs = context.recorded?.outputs ?? [:]
        let fallback = objectName(for: context.name)
        let database = context.fields["name"] ?? outputs["name"] ?? context.recorded?.fields["name"] ?? fallback
        let user = context.fields["username"] ?? outputs["username"] ?? context.recorded?.fields["username"] ?? database
        return Target(
            database: database, user: user,
            record: Owner(instance: context.name, owner: context.owner.lowercased(), stateID: stateID(context)),
            recordedPassword: outputs["password"], recorded: context.recorded != nil)
    }

    /// The state id the context carries, if any (none before states have ids).
    func stateID(_ context: ResourceContext) -> String? { nil }

    // MARK: - Blocking work

    private var address: String { "\(server.host):\(server.port)" }

    private func connect() throws(DriverError) -> MySQLConnection {
        do {
            let connection = try MySQLConnection.connect(server)
            // Keep passwords out of the general query log where the admin may (needs SUPER or similar).
            try? connection.execute("SET SESSION sql_log_off = 1")
            return connection
        } catch {
            throw DriverError(
                "mysql at \(address) unreachable: \(error.message)", retryable: !error.isPermission)
        }
    }

    @discardableResult
    private func step<T>(_ what: String, _ body: () throws(MySQLFailure) -> T) throws(DriverError) -> T {
        do {
            return try body()
        } catch {
            throw DriverError(
                "mysql at \(address): \(what) failed: \(error.message)", retryable: !error.isPermission)
        }
    }

    private func validate(_ target: Target) throws(DriverError) {
        for name in [target.database, target.user] where !MySQLSQL.isValidName(name) {
            throw DriverError(
                "mysql name '\(name)' is invalid: it must match ^[a-z_][a-z0-9_]{0,31}$; use a shorter instance name or prefix",
                retryable: false)
        }
    }

    /// What the server holds at the target's names.
    struct Inspection {
        var databaseExists: Bool
        var userExists: Bool
        /// The record in the database's `dfe_owner` table; nil when the table or row is missing.
        var owner: Owner?
        var recordedUser: String?
    }

    private func inspect(_ connection: MySQLConnection, _ target: Target) throws(DriverError) -> Inspection {
        let database = MySQLSQL.literal(target.database)
        let schemata = try step("looking up database \(target.database)") { () throws(MySQLFailure) in
            try connection.query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = \(database)")
        }
        let users = try step("looking up user \(target.user)") { () throws(MySQLFailure) in
            try connection.query(
                "SELECT User FROM mysql.user WHERE User = \(MySQLSQL.literal(target.user)) AND Host = \(MySQLSQL.literal(userHost))"
            )
        }
        var inspection = Inspection(
            databaseExists: !schemata.isEmpty, userExists: !users.isEmpty, owner: nil, recordedUser: nil)
        if inspection.databaseExists {
            do {
                let rows = try connection.query(
                    "SELECT instance, owner, state_id, user_name FROM \(MySQLSQL.identifier(target.database)).`dfe_owner` LIMIT 1"
                )
                if let row = rows.first, let instance = row[0], let owner = row[1] {
                    inspection.owner = Owner(
                        instance: instance, owner: owner, stateID: row[2].flatMap { $0.isEmpty ? nil : $0 })
                    inspection.recordedUser = row[3]
                }
            } catch  where error.code == 1146 {  // no such table: not made by dfe
                inspection.owner = nil
            } catch {
                throw DriverError(
                    "mysql at \(address): reading the owner of database \(target.database) failed: \(error.message)",
                    retryable: !error.isPermission)
            }
        }
        return inspection
    }

    /// Why the existing objects are not this instance's, or nil when they are (or absent).
    func conflict(_ found: Inspection, _ target: Target) -> String? {
        if found.databaseExists {
            guard let owner = found.owner else {
                return
                    "database \(target.database) exists but carries no dfe ownership record (table dfe_owner), so it is not this instance's; dfe never adopts, changes or drops it: drop or rename it by hand if it is not needed, or pick another instance name or prefix, then reconcile"
            }
            if owner.instance != target.record.instance {
                return
                    "database \(target.database) belongs to instance '\(owner.instance)', not '\(target.record.instance)'; rename one, then reconcile"
            }
            if let theirs = owner.stateID, let mine = target.record.stateID, theirs != mine {
                return
                    "database \(target.database) belongs to another dfe state (\(theirs)); dfe never takes over another workspace's objects: use a different prefix or server, or drop it by hand, then reconcile"
            }
            if owner.owner != target.record.owner, !target.recorded {
                return
                    "database \(target.database) was made for owner '\(owner.owner)', not '\(target.record.owner)'; retained data is never handed to another owner: restore the owner in the manifest, or move the data away by hand, then reconcile"
            }
        } else if found.userExists, !target.recorded {
            return
                "user '\(target.user)'@'\(userHost)' exists but this state never created it (and its database is missing); dfe never adopts, changes or drops it: drop it by hand if it is not needed, or pick another instance name or prefix, then reconcile"
        }
        return nil
    }

    func observeBlocking(_ target: Target) throws -> ObservedStatus {
        try validate(target)
        let connection = try connect()
        let found = try inspect(connection, target)
        if let message = conflict(found, target) { return .conflict(message) }
        switch (found.databaseExists, found.userExists) {
        case (false, false): return .missing
        case (false, true): return .drifted("database \(target.database) missing")
        case (true, false): return .drifted("user \(target.user) missing")
        case (true, true): break
        }
        if found.owner?.owner != target.record.owner { return .drifted("ownership record names another owner") }
        guard let password = target.recordedPassword else { return .drifted("no password recorded") }
        // The password cannot be read back: log in as the user, as the instance will.
        var login = server
        login.user = target.user
        login.password = Secret(password)
        login.database = target.database
        do {
            _ = try MySQLConnection.connect(login)
        } catch  where error.code == 1045 {
            return .drifted("password of user \(target.user) changed")
        } catch  where error.code == 1044 {
            return .drifted("user \(target.user) lost its privileges on database \(target.database)")
        } catch {
            throw DriverError(
                "mysql at \(address): logging in as \(target.user) failed: \(error.message)", retryable: true)
        }
        return .ok
    }

    func applyBlocking(_ target: Target) throws -> [String: String] {
        try validate(target)
        let password =
            target.recordedPassword.flatMap { MySQLSQL.isSafePassword($0) ? $0 : nil } ?? MySQLSQL.generatePassword()
        let connection = try connect()
        connection.redacting(password)
        let found = try inspect(connection, target)
        if let message = conflict(found, target) { throw DriverError(message, retryable: false) }

        let database = MySQLSQL.identifier(target.database)
        if !found.databaseExists {
            try step("creating database \(target.database)") { () throws(MySQLFailure) in
                try connection.execute(
                    "CREATE DATABASE IF NOT EXISTS \(database) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
            }
        }
        if !found.databaseExists || found.owner != target.record || found.recordedUser != target.user {
            let record = target.record
            let values = [record.instance, record.owner, record.stateID ?? "", target.user].map(MySQLSQL.literal)
            try step("recording the owner of database \(target.database)") { () throws(MySQLFailure) in
                try connection.execute(
                    "CREATE TABLE IF NOT EXISTS \(database).`dfe_owner` (instance VARCHAR(63) NOT NULL, owner VARCHAR(320) NOT NULL, state_id VARCHAR(64) NOT NULL, user_name VARCHAR(80) NOT NULL, created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP) COMMENT 'dfe ownership record'"
                )
                try connection.execute("DELETE FROM \(database).`dfe_owner`")
                try connection.execute(
                    "INSERT INTO \(database).`dfe_owner` (instance, owner, state_id, user_name) VALUES (\(values.joined(separator: ", ")))"
                )
            }
        }
        let account = MySQLSQL.account(target.user, userHost)
        try step("creating user \(target.user)") { () throws(MySQLFailure) in
            try connection.execute("CREATE USER IF NOT EXISTS \(account) IDENTIFIED BY \(MySQLSQL.literal(password))")
            // Also repairs a password changed by hand.
            try connection.execute("ALTER USER \(account) IDENTIFIED BY \(MySQLSQL.literal(password))")
        }
        try step("granting user \(target.user) all privileges on database \(target.database)") {
            () throws(MySQLFailure) in
            try connection.execute("GRANT ALL PRIVILEGES ON \(MySQLSQL.grantPattern(target.database)).* TO \(account)")
        }
        return [
            "driver": "mysql", "host": server.host, "port": String(server.port), "name": target.database,
            "username": target.user, "userHost": userHost, "password": password,
        ]
    }

    func deleteBlocking(_ target: Target) throws {
        try validate(target)
        let connection = try connect()
        let found = try inspect(connection, target)
        if let message = conflict(found, target) {
            throw DriverError("refusing to delete: " + message, retryable: false)
        }
        if found.databaseExists {
            try step("dropping database \(target.database)") { () throws(MySQLFailure) in
                try connection.execute("DROP DATABASE IF EXISTS \(MySQLSQL.identifier(target.database))")
            }
        }
        if found.userExists {
            try step("dropping user \(target.user)") { () throws(MySQLFailure) in
                try connection.execute("DROP USER IF EXISTS \(MySQLSQL.account(target.user, userHost))")
            }
        }
    }

    // MARK: - Options

    struct ParsedURL {
        var user: String
        var host: String
        var port: Int
    }

    /// Parses `mysql://ADMIN@HOST:PORT`, rejecting a password, a database path, a query or a fragment.
    static func parseURL(_ text: String, options: DriverOptions) throws -> ParsedURL {
        let format = "expected mysql://ADMIN@HOST:PORT"
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
            scheme == "mysql" || scheme == "mariadb"
        else {
            throw options.error("url", "url is not a MySQL URL; \(format)")
        }
        if components.password != nil {
            throw options.error(
                "url",
                "url must not contain a password; put it in a file named by passwordFile or a variable named by passwordEnv"
            )
        }
        guard components.query == nil, components.fragment == nil, components.path.isEmpty || components.path == "/"
        else {
            throw options.error("url", "url takes no database, query or fragment; \(format)")
        }
        guard let user = components.user, !user.isEmpty else {
            throw options.error("url", "url names no admin user; \(format)")
        }
        guard var host = components.host, !host.isEmpty else {
            throw options.error("url", "url names no host; \(format)")
        }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let port = components.port ?? 3306
        guard (1...65535).contains(port) else { throw options.error("url", "url port \(port) is out of range") }
        return ParsedURL(user: user, host: host, port: port)
    }

    /// Reads the admin password from a file that must exist with mode 0600 or stricter.
    static func readPasswordFile(_ path: String, options: DriverOptions, environment: DriverEnvironment) throws
        -> Secret
    {
        let url = environment.resolve(path)
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: url.path) else {
            throw options.error("passwordFile", "passwordFile '\(url.path)' does not exist or cannot be read")
        }
        guard (attributes[.type] as? FileAttributeType) == .typeRegular else {
            throw options.error("passwordFile", "passwordFile '\(url.path)' is not a regular file")
        }
        let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue ?? 0o777
        guard mode & 0o077 == 0 else {
            throw options.error(
                "passwordFile",
                "passwordFile '\(url.path)' has mode \(String(format: "%04o", mode & 0o7777)); it must be 0600 or stricter (chmod 600 \(url.path))"
            )
        }
        guard let data = FileManager.default.contents(atPath: url.path), var text = String(data: data, encoding: .utf8)
        else {
            throw options.error("passwordFile", "passwordFile '\(url.path)' cannot be read as UTF-8 text")
        }
        while let last = text.last, last.isNewline { text.removeLast() }
        guard !text.isEmpty else { throw options.error("passwordFile", "passwordFile '\(url.path)' is empty") }
        return Secret(text)
    }
}
