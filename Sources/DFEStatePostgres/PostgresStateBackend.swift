public import DFECore
import DFEPostgres
public import DFEState
public import Foundation

/// A state in a PostgreSQL schema: reads run in read-only transactions and need only `USAGE` and `SELECT`.
public struct PostgresStateBackend: StateBackend {
    public let location: PostgresStateURL

    public init(_ location: PostgresStateURL) {
        self.location = location
    }

    /// Registers the backend for `postgres://` and `postgresql://` state URLs.
    public static func register() {
        for scheme in ["postgres", "postgresql"] {
            StateBackends.register(scheme: scheme) { url, schema throws(StateError) in
                PostgresStateBackend(try PostgresStateURL(url, schema: schema))
            }
        }
    }

    public var displayName: String { location.description }

    var session: PostgresSession { PostgresSession.shared(location) }
    var quotedSchema: String { PostgresSchema.quoted(location.schema) }

    public func exists() throws(StateError) -> Bool {
        let location = location
        return try session.transaction(readOnly: true) { c in
            try PostgresReads.stateExists(c, location.schema, display: location.description)
        }
    }

    public func open() throws(StateError) -> any StateStoring { try PostgresStateStore(location) }

    /// Runs `body` in a read-only transaction when a state exists; nil when there is none.
    func read<T>(_ body: (PGConnection, String) throws -> T) throws(StateError) -> T? {
        let location = location
        let s = quotedSchema
        return try session.transaction(readOnly: true) { c -> T? in
            guard try PostgresReads.stateExists(c, location.schema, display: location.description) else {
                return nil
            }
            return try body(c, s)
        }
    }

    public func snapshot(withFields: Bool) throws(StateError) -> [String: RecordedInstance] {
        try read { c, s in try PostgresReads.instances(c, s, withFields: withFields) } ?? [:]
    }

    public func appliedFields(keys: [ResourceKey]) throws(StateError) -> [ResourceKey: FieldSet] {
        guard !keys.isEmpty else { return [:] }
        return try read { c, s in try PostgresReads.fields(c, s, keys: keys) } ?? [:]
    }

    public func history(instance: String?, limit: Int) throws(StateError) -> [JournalEntry] {
        try read { c, s in
            if let instance {
                return try PostgresReads.journal(c, s, where: "instance = $1", [instance], limit: limit)
            }
            return try PostgresReads.journal(c, s, where: "true", limit: limit)
        } ?? []
    }
}
