public import DFECore
public import DFEProvision
import Foundation

/// Registers the `postgres` database driver.
public enum PostgresDriver {
    /// Adds the `postgres` database driver to `registry`.
    public static func register(into registry: inout DriverRegistry) {
        registry.registerDatabase("postgres") { options, environment in
            try PostgresDatabaseProvisioner(options: options, environment: environment)
        }
    }
}

/// Provisions one role and one database owned by it per instance on a PostgreSQL server.
public struct PostgresDatabaseProvisioner: DatabaseProvisioner, CustomStringConvertible {
    /// Always `postgres`.
    public var driverName: String { "postgres" }

    /// Where the server is and how the admin logs in.
    let server: PGConnectParameters
    /// Prefix of role and database names.
    let prefix: String

    static let optionNames: Set<String> = [
        "url", "passwordEnv", "passwordFile", "prefix", "sslmode", "connectTimeout",
    ]
    static let sslModes: Set<String> = ["disable", "prefer", "require", "verify-ca", "verify-full"]

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
            guard !name.isEmpty else {
                throw options.error("passwordEnv", "passwordEnv must name an environment variable")
            }
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
        guard SQL.isValidPrefix(prefix) else {
            throw options.error(
                "prefix",
                "prefix '\(prefix)' is invalid: it must match ^[a-z_][a-z0-9_]*$ (lowercase letters, digits, _)")
        }

        let sslmode = options.optional("sslmode") ?? "prefer"
        guard Self.sslModes.contains(sslmode) else {
            throw options.error(
                "sslmode",
                "sslmode '\(sslmode)' is invalid; use one of: \(Self.sslModes.sorted().joined(separator: ", "))")
        }

        var timeout = 5
        if let text = options.optional("connectTimeout") {
            guard let duration = DurationText.parse(text), duration > .zero else {
                throw options.error("connectTimeout", "connectTimeout '\(text)' is not a positive duration such as 5s")
            }
            timeout = max(1, Int(duration.seconds.rounded(.up)))
        }

        self.prefix = prefix
        self.server = PGConnectParameters(
            host: url.host, port: url.port, database: url.database, user: url.user, password: password,
            sslmode: sslmode, connectTimeoutSeconds: timeout)
    }

    /// Describes the driver without its admin password.
    public var description: String {
        "postgres(\(server.user)@\(server.host):\(server.port)/\(server.database), prefix \(prefix))"
    }

    // MARK: - SubProvisioner

    /// The desired role and database of `spec` on this server; never a password (pure).
    public func fields(for spec: InstanceSpec, host: HostConfig, dependencies: [ResourceKind: FieldSet]) -> FieldSet {
        let name = objectName(for: spec.name)
        return FieldSet([
            "driver": "postgres",
            "host": server.host,
            "port": String(server.port),
            "name": name,
            "username": name,
        ])
    }

    /// Checks that the database and role exist, the database is owned by the role and closed to PUBLIC.
    public func observe(_ context: ResourceContext) async throws -> ObservedStatus {
        let names = names(preferringRecorded: context.fields.values.isEmpty, context)
        return try await offloaded { try self.observeBlocking(names, context) }
    }

    /// Creates or repairs the role (resetting its password to the recorded one) and its database.
    public func apply(_ context: ResourceContext) async throws -> [String: String] {
        let names = names(preferringRecorded: context.fields.values.isEmpty, context)
        return try await offloaded { try self.applyBlocking(names, context) }
    }

    /// Drops the database (ending its sessions) and the role; absent is success.
    public func delete(_ context: ResourceContext) async throws {
        let names = names(preferringRecorded: true, context)
        try await offloaded { try self.deleteBlocking(names, context) }
    }

    /// The database and role an instance gets on this server (one name for both).
    public func serverObjects(for spec: InstanceSpec) -> [ServerObject] {
        [ServerObject(server: "postgres \(address)", kind: "database and role", name: objectName(for: spec.name))]
    }

    /// PostgreSQL names are at most 63 bytes: a long instance name plus the prefix may not fit.
    public func problems(for spec: InstanceSpec) -> [String] {
        let name = objectName(for: spec.name)
        guard !SQL.isValidName(name) else { return [] }
        return [
            "database and role name '\(name)' is longer than PostgreSQL's 63 bytes; shorten the instance name to at most \(63 - prefix.utf8.count) characters"
        ]
    }

    // MARK: - Names

    /// The role and database name of an instance: prefix + name with `-` as `_`.
    func objectName(for instance: String) -> String {
        prefix + instance.replacingOccurrences(of: "-", with: "_")
    }

    /// The database and role names to act on, from desired fields or what was recorded.
    func names(preferringRecorded: Bool, _ context: ResourceContext) -> ObjectNames {
        let desired = (context.fields["name"], context.fields["username"])
        let outputs = (context.recorded?.outputs["name"], context.recorded?.outputs["username"])
        let recordedFields = (context.recorded?.fields["name"], context.recorded?.fields["username"])
        let order = preferringRecorded ? [outputs, desired, recordedFields] : [desired, outputs, recordedFields]
        for (database, role) in order {
            if let database, !database.isEmpty {
                return ObjectNames(database: database, role: role.flatMap { $0.isEmpty ? nil : $0 } ?? database)
            }
        }
        let fallback = objectName(for: context.name)
        return ObjectNames(database: fallback, role: fallback)
    }

    // MARK: - Blocking work

    private var address: String { "\(server.host):\(server.port)" }

    private func connect() throws(DriverError) -> PGConnection {
        do {
            return try PGConnection.connect(server)
        } catch {
            throw DriverError("postgres at \(address) unreachable: \(error.message)", retryable: true)
        }
    }

    /// Runs `body`, turning a server failure into a `DriverError` that says what was being done.
    @discardableResult
    private func step<T>(_ what: String, _ body: () throws(PGFailure) -> T) throws(DriverError) -> T {
        do {
            return try body()
        } catch {
            // insufficient_privilege: retrying will not help; other server errors may pass.
            let errorClass: DriverErrorClass = error.sqlState == "42501" ? .terminal(.permission) : .retryable
            throw DriverError("postgres at \(address): \(what) failed: \(error.message)", class: errorClass)
        }
    }

    private func validate(_ names: ObjectNames) throws(DriverError) {
        for name in [names.database, names.role] where !SQL.isValidName(name) {
            throw DriverError(
                "postgres name '\(name)' is invalid: it must match ^[a-z_][a-z0-9_]{0,62}$; use a shorter instance name or prefix",
                retryable: false)
        }
    }

    private func inspect(_ connection: PGConnection, _ names: ObjectNames) throws(DriverError) -> Inspection {
        let database = try step("looking up database \(names.database)") { () throws(PGFailure) in
            try connection.query(
                "SELECT pg_catalog.pg_get_userbyid(datdba), pg_catalog.shobj_description(oid, 'pg_database') "
                    + "FROM pg_catalog.pg_database WHERE datname = $1",
                [names.database])
        }
        let role = try step("looking up role \(names.role)") { () throws(PGFailure) in
            try connection.query(
                "SELECT rolcanlogin, pg_catalog.shobj_description(oid, 'pg_authid') FROM pg_catalog.pg_roles "
                    + "WHERE rolname = $1",
                [names.role])
        }
        var inspection = Inspection(
            databaseExists: !database.isEmpty, owner: database.first?.first ?? nil,
            roleExists: !role.isEmpty, roleCanLogin: (role.first?.first ?? nil) == "t", publicCanConnect: false,
            databaseComment: database.first?.last ?? nil, roleComment: role.first?.last ?? nil)
        if inspection.databaseExists {
            let open = try step("checking PUBLIC access to database \(names.database)") { () throws(PGFailure) in
                try connection.query(
                    "SELECT pg_catalog.has_database_privilege('public', $1, 'CONNECT')", [names.database])
            }
            inspection.publicCanConnect = (open.first?.first ?? nil) == "t"
        }
        return inspection
    }

    private func conflictMessage(_ names: ObjectNames, owner: String) -> String {
        "database \(names.database) exists and is owned by \(owner), not \(names.role); refusing to take it over"
    }

    /// Whether the role and database found may be used for `context`.
    enum Verdict: Equatable {
        /// Ours (or absent); `stamp` when a record must be (re)written: made by this state before it carried
        /// records, or between the create and its comment by a killed run.
        case ours(stamp: Bool)
        case conflict(String)
    }

    /// Judges the role and database by their `COMMENT ON` ownership records.
    func verdict(_ found: Inspection, _ names: ObjectNames, _ context: ResourceContext) -> Verdict {
        var stamp = false
        var roleIsOurs = false
        if found.roleExists {
            let object = "role \(names.role) on postgres \(address)"
            if let record = OwnershipRecord.decode(found.roleComment) {
                switch OwnershipRecord.verdict(found: record, for: context, object: object) {
                case .ours: roleIsOurs = true
                case .restamp: (roleIsOurs, stamp) = (true, true)
                case .conflict(let message): return .conflict(message)
                }
            } else if context.recorded?.outputs["password"] != nil {
                // Made and recorded by this state with a dfe from before ownership records. (A create never
                // leaves a role without its record: both are one transaction.)
                (roleIsOurs, stamp) = (true, true)
            } else {
                return .conflict(
                    OwnershipRecord.verdict(found: nil, for: context, object: object).conflictMessage ?? object)
            }
        }
        if found.databaseExists {
            if let owner = found.owner, owner != names.role { return .conflict(conflictMessage(names, owner: owner)) }
            let object = "database \(names.database) on postgres \(address)"
            if let record = OwnershipRecord.decode(found.databaseComment) {
                switch OwnershipRecord.verdict(found: record, for: context, object: object) {
                case .ours: break
                case .restamp: stamp = true
                case .conflict(let message): return .conflict(message)
                }
            } else if roleIsOurs || context.recorded?.outputs["password"] != nil {
                // Owned by our role: made by us, killed before its comment (or by a dfe before records).
                stamp = true
            } else {
                return .conflict(
                    OwnershipRecord.verdict(found: nil, for: context, object: object).conflictMessage ?? object)
            }
        }
        return .ours(stamp: stamp)
    }

    /// The SHA-256 of the role's stored SCRAM verifier, or nil when the admin may not read `pg_authid`.
    private func verifierDigest(_ connection: PGConnection, role: String) -> String?? {
        do {
            let rows = try connection.query("SELECT rolpassword FROM pg_catalog.pg_authid WHERE rolname = $1", [role])
            return .some((rows.first?.first ?? nil).map { SHA256.hex($0) })
        } catch {
            return nil  // insufficient_privilege: not a superuser
        }
    }

    /// Whether the recorded password still logs the role in: compares the stored verifier's digest with the
    /// recorded one when the admin may read `pg_authid` (no login), else tries a login. nil: cannot tell.
    func passwordHolds(
        _ connection: PGConnection, _ names: ObjectNames, password: String, recordedDigest: String?
    ) -> Bool? {
        if let recordedDigest, let digest = verifierDigest(connection, role: names.role) {
            return digest == recordedDigest
        }
        var parameters = server
        parameters.user = names.role
        parameters.database = names.database
        parameters.password = Secret(password)
        do {
            _ = try PGConnection.connect(parameters)
            return true
        } catch {
            return error.message.contains("password authentication failed") ? false : nil
        }
    }

    func observeBlocking(_ names: ObjectNames, _ context: ResourceContext) throws -> ObservedStatus {
        try validate(names)
        let connection = try connect()
        let found = try inspect(connection, names)
        let stamp: Bool
        switch verdict(found, names, context) {
        case .conflict(let message): return .conflict(message)
        case .ours(let needed): stamp = needed
        }
        switch (found.databaseExists, found.roleExists) {
        case (false, false): return .missing
        case (false, true): return .drifted("database \(names.database) missing")
        case (true, false): return .drifted("role \(names.role) missing")
        case (true, true): break
        }
        if !found.roleCanLogin { return .drifted("role \(names.role) cannot log in") }
        if found.publicCanConnect { return .drifted("database \(names.database) is open to PUBLIC") }
        if stamp { return .drifted("ownership record (COMMENT ON) of \(names.role) missing or outdated") }
        if let password = context.recorded?.outputs["password"],
            passwordHolds(
                connection, names, password: password, recordedDigest: context.recorded?.outputs["verifierDigest"])
                == false
        {
            return .drifted("password of role \(names.role) was changed")
        }
        return .ok
    }

    func applyBlocking(_ names: ObjectNames, _ context: ResourceContext) throws -> [String: String] {
        try validate(names)
        let connection = try connect()
        guard let record = context.ownershipRecord else {
            throw DriverError("no state id: cannot record who owns \(names.role)", class: .terminal(.configuration))
        }
        let recordedPassword = context.recorded?.outputs["password"]
        let password: String
        if let recordedPassword, SQL.isSafePassword(recordedPassword) {
            password = recordedPassword
        } else {
            password = SQL.generatePassword()
        }
        var found = try inspect(connection, names)
        if case .conflict(let message) = verdict(found, names, context) { throw DriverError.conflict(message) }
        let comment = SQL.literal(record.encoded)

        let role = SQL.identifier(names.role)
        var digest = context.recorded?.outputs["verifierDigest"]
        if found.roleExists {
            // Only re-set a password that no longer holds: an unchanged verifier keeps the outputs stable.
            let holds =
                password == recordedPassword
                ? passwordHolds(connection, names, password: password, recordedDigest: digest) : false
            if holds != true || !found.roleCanLogin {
                let verifier = try step("hashing the password of role \(names.role)") { () throws(PGFailure) in
                    try connection.encryptedPassword(password, role: names.role)
                }
                try step("setting the password of role \(names.role)") { () throws(PGFailure) in
                    try connection.execute("ALTER ROLE \(role) LOGIN PASSWORD \(SQL.literal(verifier))")
                }
                digest = SHA256.hex(verifier)
            }
            if OwnershipRecord.decode(found.roleComment) != record {
                try step("recording the owner of role \(names.role)") { () throws(PGFailure) in
                    try connection.execute("COMMENT ON ROLE \(role) IS \(comment)")
                }
            }
        } else {
            let verifier = try step("hashing the password of role \(names.role)") { () throws(PGFailure) in
                try connection.encryptedPassword(password, role: names.role)
            }
            // The role and its ownership record in one transaction: never a role of ours without the record.
            do {
                try connection.execute(
                    "BEGIN; CREATE ROLE \(role) LOGIN PASSWORD \(SQL.literal(verifier)); COMMENT ON ROLE \(role) IS \(comment); COMMIT"
                )
            } catch {
                try? connection.execute("ROLLBACK")
                if error.sqlState == "42710" {  // duplicate_object: made concurrently by someone else
                    throw DriverError.conflict(
                        "role \(names.role) on postgres \(address) was created by someone else meanwhile; refusing to take it over"
                    )
                }
                throw DriverError(
                    "postgres at \(address): creating role \(names.role) failed: \(error.message)",
                    class: error.sqlState == "42501" ? .terminal(.permission) : .retryable)
            }
            digest = SHA256.hex(verifier)
        }

        let database = SQL.identifier(names.database)
        if !found.databaseExists {
            // A non-superuser admin (CREATEROLE, CREATEDB) may only create a database owned by a role it is a
            // member of: make it one.
            let superuser = try step("checking the admin's privileges") { () throws(PGFailure) in
                try connection.query("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").first?.first
            }
            if superuser != "t" {
                try step("granting role \(names.role) to the admin") { () throws(PGFailure) in
                    try connection.execute("GRANT \(role) TO CURRENT_USER")
                }
            }
            do {
                try connection.execute("CREATE DATABASE \(database) OWNER \(role)")
            } catch  where error.sqlState == "42P04" {  // duplicate_database: created concurrently
                found = try inspect(connection, names)
                if case .conflict(let message) = verdict(found, names, context) {
                    throw DriverError.conflict(message)
                }
            } catch {
                throw DriverError(
                    "postgres at \(address): creating database \(names.database) failed: \(error.message)",
                    class: error.sqlState == "42501" ? .terminal(.permission) : .retryable)
            }
        }
        if OwnershipRecord.decode(found.databaseComment) != record || !found.databaseExists {
            try step("recording the owner of database \(names.database)") { () throws(PGFailure) in
                try connection.execute("COMMENT ON DATABASE \(database) IS \(comment)")
            }
        }
        try step("revoking CONNECT on database \(names.database) from PUBLIC") { () throws(PGFailure) in
            try connection.execute("REVOKE CONNECT ON DATABASE \(database) FROM PUBLIC")
        }
        try step("granting CONNECT on database \(names.database) to \(names.role)") { () throws(PGFailure) in
            try connection.execute("GRANT CONNECT ON DATABASE \(database) TO \(role)")
        }
        var outputs = [
            "driver": "postgres",
            "host": server.host,
            "port": String(server.port),
            "name": names.database,
            "username": names.role,
            "password": password,
        ]
        outputs["verifierDigest"] = digest
        return outputs
    }

    func deleteBlocking(_ names: ObjectNames, _ context: ResourceContext) throws {
        try validate(names)
        let connection = try connect()
        let found = try inspect(connection, names)
        if case .conflict(let message) = verdict(found, names, context) {
            throw DriverError.conflict("refusing to drop: " + message)
        }
        if found.databaseExists {
            let database = SQL.identifier(names.database)
            try step("disconnecting sessions of database \(names.database)") { () throws(PGFailure) in
                try connection.query(
                    "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity "
                        + "WHERE datname = $1 AND pid <> pg_catalog.pg_backend_pid()",
                    [names.database])
            }
            // WITH (FORCE) (PostgreSQL 13+) also ends sessions that connected in between.
            let force = connection.serverVersion >= 130_000 ? " WITH (FORCE)" : ""
            try step("dropping database \(names.database)") { () throws(PGFailure) in
                try connection.execute("DROP DATABASE IF EXISTS \(database)\(force)")
            }
        }
        if found.roleExists {
            try step("dropping role \(names.role)") { () throws(PGFailure) in
                try connection.execute("DROP ROLE IF EXISTS \(SQL.identifier(names.role))")
            }
        }
    }

    // MARK: - Options

    struct ParsedURL {
        var user: String
        var host: String
        var port: Int
        var database: String
    }

    /// Parses `postgres://ADMIN@HOST:PORT/DB`, rejecting a password, query or fragment.
    static func parseURL(_ text: String, options: DriverOptions) throws -> ParsedURL {
        let format = "expected postgres://ADMIN@HOST:PORT/DB"
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
            scheme == "postgres" || scheme == "postgresql"
        else {
            throw options.error("url", "url is not a PostgreSQL URL; \(format)")
        }
        if components.password != nil {
            // Never echo the URL: it holds the password.
            throw options.error(
                "url",
                "url must not contain a password; put it in a file named by passwordFile or a variable named by passwordEnv"
            )
        }
        guard components.query == nil, components.fragment == nil else {
            throw options.error("url", "url takes no query or fragment; use the options sslmode and connectTimeout")
        }
        guard let user = components.user, !user.isEmpty else {
            throw options.error("url", "url names no admin user; \(format)")
        }
        guard var host = components.host, !host.isEmpty else {
            throw options.error("url", "url names no host; \(format)")
        }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let port = components.port ?? 5432
        guard (1...65535).contains(port) else {
            throw options.error("url", "url port \(port) is out of range")
        }
        var path = components.path
        if path.hasPrefix("/") { path.removeFirst() }
        guard !path.contains("/") else {
            throw options.error("url", "url path must be a single database name; \(format)")
        }
        return ParsedURL(user: user, host: host, port: port, database: path.isEmpty ? "postgres" : path)
    }

    /// Reads the admin password from a file that must exist with mode 0600 or stricter.
    static func readPasswordFile(_ path: String, options: DriverOptions, environment: DriverEnvironment) throws
        -> Secret
    {
        let url = environment.resolve(path)
        let attributes: [FileAttributeKey: Any]
        do {
            attributes = try FileManager.default.attributesOfItem(atPath: url.path)
        } catch {
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
        guard !text.isEmpty else {
            throw options.error("passwordFile", "passwordFile '\(url.path)' is empty")
        }
        return Secret(text)
    }
}

/// The database and role an instance owns on the server.
struct ObjectNames: Sendable, Hashable {
    var database: String
    var role: String
}

/// What the server says about an instance's database and role.
struct Inspection {
    var databaseExists: Bool
    var owner: String?
    var roleExists: Bool
    var roleCanLogin: Bool
    var publicCanConnect: Bool
    /// The `COMMENT ON DATABASE` text (an ownership record when dfe made it).
    var databaseComment: String?
    /// The `COMMENT ON ROLE` text.
    var roleComment: String?
}
