public import DFEState
public import Foundation

/// A `postgres://USER@HOST:PORT/DB[?sslmode=...]` state location and the schema its tables live in.
///
/// A password in the URL is refused: libpq's `PGPASSWORD`, `PGPASSFILE` and `~/.pgpass` supply it.
public struct PostgresStateURL: Sendable, Hashable, CustomStringConvertible {
    public var user: String
    public var host: String
    public var port: Int
    public var database: String
    public var sslmode: String
    public var schema: String

    /// The sslmode values libpq accepts.
    static let sslmodes: Set<String> = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]

    /// Parses and checks a state URL; every problem is a `.invalidLocation` naming it.
    public init(_ url: URL, schema: String = "dfe") throws(StateError) {
        guard let components = URLComponents(url: url, resolvingAgainstBaseURL: false),
            ["postgres", "postgresql"].contains(components.scheme?.lowercased() ?? "")
        else { throw StateError.invalidLocation("not a postgres:// URL") }
        if components.password != nil {
            throw StateError.invalidLocation(
                "a password in the state URL is refused (it would show in process lists and shell history); remove it and use PGPASSWORD, PGPASSFILE or ~/.pgpass"
            )
        }
        guard let user = components.user, !user.isEmpty else {
            throw StateError.invalidLocation("the state URL needs a user: postgres://USER@HOST:PORT/DB")
        }
        guard let host = components.host, !host.isEmpty else {
            throw StateError.invalidLocation("the state URL needs a host: postgres://USER@HOST:PORT/DB")
        }
        let database = String(components.path.drop { $0 == "/" })
        guard !database.isEmpty, !database.contains("/") else {
            throw StateError.invalidLocation("the state URL needs one database name: postgres://USER@HOST:PORT/DB")
        }
        var sslmode = "prefer"
        for item in components.queryItems ?? [] {
            guard item.name == "sslmode" else {
                throw StateError.invalidLocation("unknown state URL parameter '\(item.name)'; known: sslmode")
            }
            guard let value = item.value, Self.sslmodes.contains(value) else {
                throw StateError.invalidLocation(
                    "sslmode must be one of \(Self.sslmodes.sorted().joined(separator: ", "))")
            }
            sslmode = value
        }
        guard Self.isIdentifier(schema) else {
            throw StateError.invalidLocation(
                "state schema '\(schema)' must be a lower-case identifier (a-z, 0-9, _; at most 63 characters)")
        }
        self.user = user
        self.host = host
        self.port = components.port ?? 5432
        self.database = database
        self.sslmode = sslmode
        self.schema = schema
    }

    /// `^[a-z_][a-z0-9_]{0,62}$`: safe to interpolate (quoted) as a schema name.
    static func isIdentifier(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard let first = bytes.first, bytes.count <= 63 else { return false }
        func allowed(_ byte: UInt8) -> Bool { (0x61...0x7A).contains(byte) || byte == 0x5F }
        return allowed(first) && bytes.allSatisfy { allowed($0) || (0x30...0x39).contains($0) }
    }

    /// `postgres://USER@HOST:PORT/DB (schema S)`, as messages show it (there is never a password to hide).
    public var description: String { "postgres://\(user)@\(host):\(port)/\(database) (schema \(schema))" }
}
