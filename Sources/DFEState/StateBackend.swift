public import DFECore
public import Foundation
import Synchronization

/// What a successful step leaves in the state.
public enum StateOutcome: Sendable {
    /// The resource now exists as recorded.
    case recorded(RecordedResource)
    /// The resource row is removed (deleted or retained-and-forgotten).
    case forgotten(ResourceKind)
}

/// An open, migrated state that a run writes: instances, resources, runs, the journal and the lease.
///
/// Every backend gives the same guarantees: a step's intent is committed before its side effect runs, and its
/// outcome is committed in the same transaction as the resource row it records.
public protocol StateStoring: AnyObject, Sendable {
    /// Every recorded instance with its resources (without applied fields when `withFields` is false).
    func instances(withFields: Bool) async throws -> [String: RecordedInstance]
    /// The applied fields of some resources.
    func appliedFields(keys: [ResourceKey]) async throws -> [ResourceKey: FieldSet]
    /// Inserts or updates an instance row (not its resources).
    func saveInstance(_ instance: RecordedInstance, at now: Date) async throws
    /// Saves many instance rows in one transaction.
    func saveInstances(_ instances: [RecordedInstance], at now: Date) async throws
    /// Forgets an instance and its resource rows (data is handled by drivers, not here).
    func forgetInstance(_ name: String) async throws

    /// Records the start of an applying run.
    func beginRun(holder: String, revision: String?, at now: Date) async throws -> Int64
    /// Records the end of a run with its summary.
    func finishRun(_ id: Int64, status: String, summary: String, at now: Date) async throws
    /// Marks every step left `started` by a killed run as `interrupted`, and returns them.
    func recoverInterrupted(at now: Date) async throws -> [JournalEntry]
    /// Journals the intent of a step before it runs; returns the entry's id.
    func recordIntent(run: Int64, change: ResourceChange, at now: Date) async throws -> Int64
    /// Journals a step's success and records its result in the same transaction.
    func recordSuccess(_ journalID: Int64, instance: String, outcome: StateOutcome, at now: Date) async throws
    /// Journals a step's failure.
    func recordFailure(_ journalID: Int64, error: String, at now: Date) async throws
    /// The journal, newest last, optionally for one instance.
    func history(instance: String?, limit: Int) async throws -> [JournalEntry]

    /// Takes the single-writer lease with a new fencing epoch and fences every later write of this store with it.
    ///
    /// Throws `.leaseHeld` naming the holder unless its lease expired, it is `me`, or `me.provesGone(holder)`.
    /// The epoch (`lease_epoch`) grows on every acquisition; the lease row records it.
    @discardableResult
    func acquireLease(_ me: LeaseIdentity, ttl: Duration, at now: Date, probe: ProcessProbe) async throws -> Int64
    /// Extends the lease held with this store's epoch; throws `.leaseLost` when another epoch holds it.
    func renewLease(ttl: Duration, at now: Date) async throws
    /// Whether this store's run lost its lease (a renewal or a fenced write found another epoch).
    ///
    /// Once true, every write throws `.leaseLost`; each write also checks the epoch inside its own transaction.
    var hasLostLease: Bool { get }
    /// Releases the lease if this store's epoch still holds it (synchronous: it must also run from a cancelled
    /// task).
    func releaseLease() throws
    /// The current lease holder, if any.
    func leaseHolder() async throws -> LeaseHolder?
    /// Clears a lease not renewed for `StateStore.unlockIdle` (`dfe unlock --force`); returns the former holder.
    ///
    /// Throws `.leaseLive` for a lease renewed more recently, unless `me.provesGone(holder)`.
    func forceUnlock(_ me: LeaseIdentity, at now: Date, probe: ProcessProbe) async throws -> LeaseHolder?
    /// Closes the connection.
    func close()

    /// Every table of the state but the migration records and the lease, rows as text (for `dfe state copy`).
    func exportTables() async throws -> [StateTable]
    /// Replaces the rows of these tables with the given ones in one transaction (for `dfe state copy`).
    func importTables(_ tables: [StateTable]) async throws
}

/// One table's rows in a backend-neutral form: values as text, NULL as nil, blobs as `\x` + hex.
public struct StateTable: Sendable, Hashable {
    public var name: String
    public var columns: [String]
    public var rows: [[String?]]

    public init(name: String, columns: [String], rows: [[String?]]) {
        self.name = name
        self.columns = columns
        self.rows = rows
    }

    /// Tables a copy leaves alone: migration records and the lease (each state keeps its own).
    public static let notCopied: Set<String> = [
        "grdb_migrations", "schema_migrations", "sqlite_sequence", "lease", "lease_epoch",
    ]

    /// Parents before children (foreign keys), then by name.
    public static func ordered(_ names: [String]) -> [String] {
        let first = ["instances", "runs"]
        return names.sorted { a, b in
            let (ia, ib) = (first.firstIndex(of: a) ?? first.count, first.firstIndex(of: b) ?? first.count)
            return ia != ib ? ia < ib : a < b
        }
    }
}

extension StateStoring {
    /// Takes the lease, probing `/proc` for whether a holder is gone.
    @discardableResult
    public func acquireLease(_ me: LeaseIdentity, ttl: Duration, at now: Date) async throws -> Int64 {
        try await acquireLease(me, ttl: ttl, at: now, probe: .live)
    }

    /// Clears a stale lease, probing `/proc` for whether its holder is gone.
    public func forceUnlock(_ me: LeaseIdentity, at now: Date) async throws -> LeaseHolder? {
        try await forceUnlock(me, at: now, probe: .live)
    }
}

/// Where a state lives, and how to read it without writing or open it for a run.
public protocol StateBackend: Sendable {
    /// The location as shown in messages (never with a password).
    var displayName: String { get }
    /// Whether a state exists there (read-only).
    func exists() throws(StateError) -> Bool
    /// Opens (creating and migrating when needed) the state for a run.
    func open() throws(StateError) -> any StateStoring
    /// Reads every instance without writing anything; empty when there is no state yet.
    func snapshot(withFields: Bool) throws(StateError) -> [String: RecordedInstance]
    /// The applied fields of some resources, read without writing anything.
    func appliedFields(keys: [ResourceKey]) throws(StateError) -> [ResourceKey: FieldSet]
    /// The journal, newest last, read without writing anything; empty when there is no state yet.
    func history(instance: String?, limit: Int) throws(StateError) -> [JournalEntry]
    /// How many journal entries there are (optionally for one instance), so history can say when it truncates.
    func historyCount(instance: String?) throws(StateError) -> Int
}

extension StateBackend {
    /// Counts by reading the whole journal; backends override it with a `COUNT(*)`.
    public func historyCount(instance: String?) throws(StateError) -> Int {
        try history(instance: instance, limit: Int.max).count
    }
}

/// The embedded default: one SQLite file.
public struct SQLiteStateBackend: StateBackend {
    public let url: URL

    public init(url: URL) { self.url = url }

    public var displayName: String { url.path }

    public func exists() throws(StateError) -> Bool { FileManager.default.fileExists(atPath: url.path) }

    public func open() throws(StateError) -> any StateStoring { try StateStore(url: url) }

    public func snapshot(withFields: Bool) throws(StateError) -> [String: RecordedInstance] {
        try StateStore.snapshot(url: url, withFields: withFields)
    }

    public func appliedFields(keys: [ResourceKey]) throws(StateError) -> [ResourceKey: FieldSet] {
        try StateStore.appliedFields(url: url, keys: keys)
    }

    public func history(instance: String?, limit: Int) throws(StateError) -> [JournalEntry] {
        try StateStore.history(url: url, instance: instance, limit: limit)
    }

    public func historyCount(instance: String?) throws(StateError) -> Int {
        try StateStore.historyCount(url: url, instance: instance)
    }
}

/// Finds the backend of a state location: a file path (SQLite) or a URL whose scheme a backend registered.
public enum StateBackends {
    /// Makes a backend for a non-file URL and the schema its tables live in.
    public typealias Factory = @Sendable (_ url: URL, _ schema: String) throws(StateError) -> any StateBackend

    private static let factories = Mutex<[String: Factory]>([:])

    /// Registers the backend for URLs with `scheme` (e.g. `postgres`).
    public static func register(scheme: String, _ factory: @escaping Factory) {
        factories.withLock { $0[scheme.lowercased()] = factory }
    }

    /// The backend for `url`: SQLite for a file URL, else the one registered for its scheme.
    public static func backend(for url: URL, schema: String = "dfe") throws(StateError) -> any StateBackend {
        if url.isFileURL { return SQLiteStateBackend(url: url) }
        let scheme = url.scheme?.lowercased() ?? ""
        guard let factory = factories.withLock({ $0[scheme] }) else {
            throw StateError.unsupportedLocation(scheme: scheme)
        }
        return try factory(url, schema)
    }
}
