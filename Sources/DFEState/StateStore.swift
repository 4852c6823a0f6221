public import DFECore
public import Foundation
import GRDB
import Synchronization

/// The observed state: one SQLite file in WAL mode holding instances, resources, runs, the journal and the lease.
public final class StateStore: StateStoring {
    public let url: URL
    /// One connection (WAL mode): closing it as the last connection checkpoints and removes `-wal`/`-shm`.
    let pool: DatabaseQueue
    /// Set once renewing or a fenced write found the lease taken by another process: nothing more is written.
    let lostLease = Mutex(false)
    /// The fencing epoch of the lease this store's run holds; nil before acquisition (writes are then unfenced).
    let fence = Mutex<Int64?>(nil)

    /// Opens (creating when needed) and migrates the state database. The file is made mode 0600: it holds secrets.
    public init(url: URL) throws(StateError) {
        self.url = url
        let path = url.path
        do {
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o750])
            // O_EXCL: never replace a file another process may have just created and started writing.
            let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            if descriptor >= 0 { Glibc.close(descriptor) }
            // The state holds generated secrets: keep it private even if it was created otherwise.
            chmod(path, 0o600)
            var config = Configuration()
            config.busyMode = .timeout(10)
            config.foreignKeysEnabled = true
            config.journalMode = .wal
            pool = try Self.openAndMigrate(path: path, configuration: config)
        } catch let error as StateError {
            throw error
        } catch {
            throw StateError.database(path: path, message: "\(error)")
        }
    }

    /// Opens the database and applies pending migrations.
    ///
    /// Two processes opening a new state at once race to switch it to WAL and to create the schema; the
    /// loser's statement fails (and its transaction rolls back), and retrying finds the winner's work done.
    static func openAndMigrate(path: String, configuration: Configuration) throws -> DatabaseQueue {
        var attempt = 0
        while true {
            do {
                let queue = try DatabaseQueue(path: path, configuration: configuration)
                do {
                    let superseded = try queue.read { db in
                        try db.tableExists("grdb_migrations") && Schema.migrator.hasBeenSuperseded(db)
                    }
                    if superseded { throw StateError.newerSchema(path: path) }
                    try Schema.migrator.migrate(queue)
                    return queue
                } catch {
                    try? queue.close()
                    throw error
                }
            } catch let error as DatabaseError where attempt < 50 {
                _ = error
                attempt += 1
                usleep(20_000)
            }
        }
    }

    /// Reads every instance without writing anything (for dry runs): no file is created, migrated or left behind.
    ///
    /// Returns an empty state when the file does not exist yet. See `ReadOnlyState` for how the file is read.
    public static func snapshot(url: URL, withFields: Bool = true) throws(StateError) -> [String: RecordedInstance] {
        let instances = try read(url: url) { db -> [String: RecordedInstance] in
            guard try db.tableExists("instances") else { return [:] }
            return try loadInstances(db, withFields: withFields)
        }
        return instances ?? [:]
    }

    /// The applied fields of some resources, read like `snapshot` (nothing written).
    public static func appliedFields(url: URL, keys: [ResourceKey]) throws(StateError) -> [ResourceKey: FieldSet] {
        guard !keys.isEmpty else { return [:] }
        return try read(url: url) { db in try fields(db, keys: keys) } ?? [:]
    }

    /// The journal, newest last, read like `snapshot` (nothing written); empty when there is no state yet.
    public static func history(url: URL, instance: String?, limit: Int) throws(StateError) -> [JournalEntry] {
        try read(url: url) { db -> [JournalEntry] in
            guard try db.tableExists("journal") else { return [] }
            if let instance { return try journal(db, where: "instance = ?", arguments: [instance], limit: limit) }
            return try journal(db, where: "1", arguments: [], limit: limit)
        } ?? []
    }

    /// How many journal entries there are (optionally for one instance), read like `snapshot` (nothing written).
    public static func historyCount(url: URL, instance: String?) throws(StateError) -> Int {
        try read(url: url) { db -> Int in
            guard try db.tableExists("journal") else { return 0 }
            if let instance {
                return try Int.fetchOne(
                    db, sql: "SELECT COUNT(*) FROM journal WHERE instance = ?", arguments: [instance])
                    ?? 0
            }
            return try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM journal") ?? 0
        } ?? 0
    }

    /// The applied fields of some resources.
    public func appliedFields(keys: [ResourceKey]) async throws -> [ResourceKey: FieldSet] {
        guard !keys.isEmpty else { return [:] }
        return try await pool.read { db in try Self.fields(db, keys: keys) }
    }

    static func fields(_ db: Database, keys: [ResourceKey]) throws -> [ResourceKey: FieldSet] {
        var result: [ResourceKey: FieldSet] = [:]
        let statement = try db.cachedStatement(sql: "SELECT fields FROM resources WHERE instance = ? AND kind = ?")
        for key in keys {
            if let text = try String.fetchOne(statement, arguments: [key.instance, key.kind.rawValue]) {
                result[key] = FieldSet(StoredMap.decode(text))
            }
        }
        return result
    }

    /// Every recorded instance with its resources (without applied fields when `withFields` is false).
    public func instances(withFields: Bool = true) async throws -> [String: RecordedInstance] {
        try await pool.read { db in try Self.loadInstances(db, withFields: withFields) }
    }

    static func loadInstances(_ db: Database, withFields: Bool = true) throws -> [String: RecordedInstance] {
        var result: [String: RecordedInstance] = [:]
        let rows = try Row.fetchCursor(db, sql: "SELECT * FROM instances")
        while let row = try rows.next() {
            let name: String = row["name"]
            result[name] = RecordedInstance(
                name: name, owner: row["owner"], provisioner: row["provisioner"], specHash: row["spec_hash"],
                phase: Phase(rawValue: row["phase"]) ?? .pending, lastError: row["last_error"],
                attempts: row["attempts"], nextAttemptAt: row["next_attempt_at"],
                failedSpecHash: row["failed_spec_hash"], revision: row["revision"], protect: row["protect"],
                storageDeletionPolicy: DeletionPolicy(rawValue: row["storage_policy"]) ?? .retain,
                databaseDeletionPolicy: DeletionPolicy(rawValue: row["database_policy"]) ?? .retain,
                labels: StoredMap.decode(row["labels"]))
        }
        let columns = "instance, kind, host, driver, spec_hash, outputs" + (withFields ? ", fields" : "")
        let resources = try Row.fetchCursor(db, sql: "SELECT \(columns) FROM resources")
        while let row = try resources.next() {
            let instance: String = row["instance"]
            guard let kind = ResourceKind(rawValue: row["kind"]) else { continue }
            result[instance]?.resources[kind] = RecordedResource(
                kind: kind, host: row["host"], driver: row["driver"], specHash: row["spec_hash"],
                fieldsJSON: withFields ? (row["fields"] ?? "{}") : nil, outputs: StoredMap.decode(row["outputs"]))
        }
        return result
    }

    // MARK: Instances

    /// Inserts or updates an instance row (not its resources).
    public func saveInstance(_ instance: RecordedInstance, at now: Date) async throws {
        try await write { db in try Self.upsert(instance, db: db, now: now) }
    }

    /// Saves many instance rows in one transaction.
    public func saveInstances(_ instances: [RecordedInstance], at now: Date) async throws {
        guard !instances.isEmpty else { return }
        try await write { db in
            for instance in instances { try Self.upsert(instance, db: db, now: now) }
        }
    }

    static func upsert(_ i: RecordedInstance, db: Database, now: Date) throws {
        try db.execute(
            sql: """
                INSERT INTO instances (name, owner, provisioner, spec_hash, phase, last_error, attempts, next_attempt_at,
                    failed_spec_hash, revision, protect, storage_policy, database_policy, labels, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, provisioner = excluded.provisioner,
                    spec_hash = excluded.spec_hash, phase = excluded.phase, last_error = excluded.last_error,
                    attempts = excluded.attempts, next_attempt_at = excluded.next_attempt_at,
                    failed_spec_hash = excluded.failed_spec_hash, revision = excluded.revision,
                    protect = excluded.protect, storage_policy = excluded.storage_policy,
                    database_policy = excluded.database_policy, labels = excluded.labels, updated_at = excluded.updated_at
                """,
            arguments: [
                i.name, i.owner, i.provisioner, i.specHash, i.phase.rawValue, i.lastError, i.attempts, i.nextAttemptAt,
                i.failedSpecHash, i.revision, i.protect, i.storageDeletionPolicy.rawValue,
                i.databaseDeletionPolicy.rawValue, StoredMap.encode(i.labels), now.timeIntervalSince1970,
            ])
    }

    /// Forgets an instance and its resource rows (data is handled by drivers, not here).
    public func forgetInstance(_ name: String) async throws {
        try await write { db in try db.execute(sql: "DELETE FROM instances WHERE name = ?", arguments: [name]) }
    }

    // MARK: Runs and journal

    /// Records the start of an applying run.
    public func beginRun(holder: String, revision: String?, at now: Date) async throws -> Int64 {
        try await write { db in
            try db.execute(
                sql: "INSERT INTO runs (holder, started_at, status, revision) VALUES (?, ?, 'running', ?)",
                arguments: [holder, now.timeIntervalSince1970, revision])
            return db.lastInsertedRowID
        }
    }

    /// Records the end of a run with its summary.
    public func finishRun(_ id: Int64, status: String, summary: String, at now: Date) async throws {
        try await write { db in
            try db.execute(
                sql: "UPDATE runs SET finished_at = ?, status = ?, summary = ? WHERE id = ?",
                arguments: [now.timeIntervalSince1970, status, summary, id])
        }
    }

    /// Marks every step left `started` by a killed run as `interrupted`, and returns them.
    public func recoverInterrupted(at now: Date) async throws -> [JournalEntry] {
        try await write { db in
            let entries = try Self.journal(db, where: "status = 'started'", arguments: [])
            try db.execute(
                sql: "UPDATE journal SET status = 'interrupted', finished_at = ? WHERE status = 'started'",
                arguments: [now.timeIntervalSince1970])
            try db.execute(
                sql: "UPDATE runs SET status = 'interrupted', finished_at = ? WHERE status = 'running'",
                arguments: [now.timeIntervalSince1970])
            return entries
        }
    }

    /// Journals the intent of a step before it runs; returns the entry's id.
    public func recordIntent(run: Int64, change: ResourceChange, at now: Date) async throws -> Int64 {
        return try await write { db in
            try db.execute(
                sql: """
                    INSERT INTO journal (run_id, instance, resource, action, reason, status, started_at)
                    VALUES (?, ?, ?, ?, ?, 'started', ?)
                    """,
                arguments: [
                    run, change.instance, change.resource.rawValue, change.action.rawValue, change.reason,
                    now.timeIntervalSince1970,
                ])
            return db.lastInsertedRowID
        }
    }

    /// What a successful step leaves in the state.
    public typealias Outcome = StateOutcome

    /// Journals a step's success and records its result in the same transaction.
    public func recordSuccess(_ journalID: Int64, instance: String, outcome: Outcome, at now: Date) async throws {
        try await write { db in
            let time = now.timeIntervalSince1970
            switch outcome {
            case .recorded(let resource):
                try db.execute(
                    sql: """
                        INSERT INTO resources (instance, kind, host, driver, spec_hash, fields, outputs, updated_at)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                        ON CONFLICT(instance, kind) DO UPDATE SET host = excluded.host, driver = excluded.driver,
                            spec_hash = excluded.spec_hash, fields = excluded.fields, outputs = excluded.outputs,
                            updated_at = excluded.updated_at
                        """,
                    arguments: [
                        instance, resource.kind.rawValue, resource.host, resource.driver, resource.specHash,
                        resource.fieldsJSON, StoredMap.encode(resource.outputs), time,
                    ])
            case .forgotten(let kind):
                try db.execute(
                    sql: "DELETE FROM resources WHERE instance = ? AND kind = ?", arguments: [instance, kind.rawValue])
            }
            try db.execute(
                sql: "UPDATE journal SET status = 'succeeded', finished_at = ? WHERE id = ?",
                arguments: [time, journalID])
        }
    }

    /// Journals a step's failure.
    public func recordFailure(_ journalID: Int64, error: String, at now: Date) async throws {
        try await write { db in
            try db.execute(
                sql: "UPDATE journal SET status = 'failed', error = ?, finished_at = ? WHERE id = ?",
                arguments: [error, now.timeIntervalSince1970, journalID])
        }
    }

    /// The journal, newest last, optionally for one instance.
    public func history(instance: String? = nil, limit: Int = 1000) async throws -> [JournalEntry] {
        try await pool.read { db in
            if let instance {
                return try Self.journal(db, where: "instance = ?", arguments: [instance], limit: limit)
            }
            return try Self.journal(db, where: "1", arguments: [], limit: limit)
        }
    }

    static func journal(_ db: Database, where clause: String, arguments: StatementArguments, limit: Int = -1) throws
        -> [JournalEntry]
    {
        let rows = try Row.fetchAll(
            db,
            sql: "SELECT * FROM (SELECT * FROM journal WHERE \(clause) ORDER BY id DESC LIMIT \(limit)) ORDER BY id",
            arguments: arguments)
        return rows.compactMap { row in
            guard let kind = ResourceKind(rawValue: row["resource"]), let action = Action(rawValue: row["action"]),
                let status = JournalEntry.Status(rawValue: row["status"])
            else { return nil }
            let finished: Double? = row["finished_at"]
            return JournalEntry(
                id: row["id"], runID: row["run_id"], instance: row["instance"], resource: kind, action: action,
                reason: row["reason"], status: status, error: row["error"],
                startedAt: Date(timeIntervalSince1970: row["started_at"]),
                finishedAt: finished.map { Date(timeIntervalSince1970: $0) })
        }
    }

    /// A write transaction that first checks, inside the transaction, that this run still holds the lease.
    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        if lostLease.withLock({ $0 }) { throw StateError.leaseLost }
        return try await pool.write { db in
            try self.checkFence(db)
            return try body(db)
        }
    }

    /// Throws `.leaseLost` (and remembers it) when a fenced run's epoch no longer holds the lease.
    func checkFence(_ db: Database) throws {
        guard let epoch = fence.withLock({ $0 }) else { return }
        let current = try Int64.fetchOne(db, sql: "SELECT epoch FROM lease WHERE id = 1")
        guard current != epoch else { return }
        lostLease.withLock { $0 = true }
        throw StateError.leaseLost
    }

    /// Runs `PRAGMA integrity_check`; "ok" when healthy.
    public func integrityCheck() async throws -> String {
        try await pool.read { db in try String.fetchOne(db, sql: "PRAGMA integrity_check") ?? "" }
    }

    public func exportTables() async throws -> [StateTable] {
        try await pool.read { db in
            let names = try String.fetchAll(
                db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
            return try StateTable.ordered(names.filter { !StateTable.notCopied.contains($0) }).map { name in
                let columns = try db.columns(in: name).map(\.name)
                let rows = try Row.fetchAll(db, sql: "SELECT * FROM \(name.quotedDatabaseIdentifier)").map { row in
                    columns.map { column -> String? in
                        switch (row[column] as DatabaseValue).storage {
                        case .null: nil
                        case .int64(let value): String(value)
                        case .double(let value): "\(value)"
                        case .string(let value): value
                        case .blob(let data): "\\x" + data.map { String(format: "%02x", $0) }.joined()
                        }
                    }
                }
                return StateTable(name: name, columns: columns, rows: rows)
            }
        }
    }

    public func importTables(_ tables: [StateTable]) async throws {
        try await pool.write { db in
            for table in tables.reversed() {
                try db.execute(sql: "DELETE FROM \(table.name.quotedDatabaseIdentifier)")
            }
            for table in tables {
                let types = Dictionary(
                    try db.columns(in: table.name).map { ($0.name, $0.type.uppercased()) },
                    uniquingKeysWith: { a, _ in a })
                let names = table.columns.map(\.quotedDatabaseIdentifier).joined(separator: ", ")
                let marks = Array(repeating: "?", count: table.columns.count).joined(separator: ", ")
                let statement = try db.makeStatement(
                    sql: "INSERT INTO \(table.name.quotedDatabaseIdentifier) (\(names)) VALUES (\(marks))")
                for row in table.rows {
                    let values = zip(table.columns, row).map { column, text -> (any DatabaseValueConvertible)? in
                        guard let text else { return nil }
                        let type = types[column] ?? ""
                        if type.contains("BLOB"), text.hasPrefix("\\x") { return Self.bytes(hex: text.dropFirst(2)) }
                        if type.contains("INT"), text == "t" || text == "f" { return text == "t" ? 1 : 0 }
                        return text
                    }
                    try statement.execute(arguments: StatementArguments(values))
                }
            }
        }
    }

    static func bytes(hex: Substring) -> Data {
        var data = Data()
        var index = hex.startIndex
        while index < hex.endIndex, let next = hex.index(index, offsetBy: 2, limitedBy: hex.endIndex) {
            if let byte = UInt8(hex[index..<next], radix: 16) { data.append(byte) }
            index = next
        }
        return data
    }

    /// Closes the database (checkpointing the WAL).
    public func close() {
        try? pool.close()
    }
}
