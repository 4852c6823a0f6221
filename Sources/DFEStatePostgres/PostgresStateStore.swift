public import DFECore
import DFEPostgres
import DFEProvision
public import DFEState
public import Foundation
import Synchronization

/// The state in PostgreSQL tables of one schema, on the process's one connection to the server.
///
/// Same guarantees as the SQLite store: every write is one transaction; a step's intent commits before its side
/// effect; its outcome commits with the resource row. Once this store holds the lease, each write first locks the
/// lease row (`FOR SHARE`) and checks its fencing epoch in the same transaction, so a run that lost the lease
/// writes nothing more. The lease is a row, not an advisory lock, so it also works through PgBouncer.
public final class PostgresStateStore: StateStoring {
    public let location: PostgresStateURL
    let session: PostgresSession
    /// The quoted schema.
    let s: String
    private let lostLease = Mutex(false)
    /// The fencing epoch of the lease this store holds; nil before acquisition (writes are then unfenced).
    private let fence = Mutex<Int64?>(nil)

    /// Connects (or reuses the process's connection), creates the schema when needed and migrates it.
    public init(_ location: PostgresStateURL) throws(StateError) {
        self.location = location
        self.session = PostgresSession.shared(location)
        self.s = PostgresSchema.quoted(location.schema)
        let display = location.description
        try session.run { connection in
            try PostgresSchema.migrate(connection, schema: location.schema, display: display)
        }
    }

    // MARK: Reads

    public func instances(withFields: Bool) async throws -> [String: RecordedInstance] {
        try await read { c, s in try PostgresReads.instances(c, s, withFields: withFields) }
    }

    public func appliedFields(keys: [ResourceKey]) async throws -> [ResourceKey: FieldSet] {
        guard !keys.isEmpty else { return [:] }
        return try await read { c, s in try PostgresReads.fields(c, s, keys: keys) }
    }

    public func history(instance: String?, limit: Int) async throws -> [JournalEntry] {
        try await read { c, s in
            if let instance {
                return try PostgresReads.journal(c, s, where: "instance = $1", [instance], limit: limit)
            }
            return try PostgresReads.journal(c, s, where: "true", limit: limit)
        }
    }

    // MARK: Instances

    public func saveInstance(_ instance: RecordedInstance, at now: Date) async throws {
        try await write { c, s in try Self.upsert(instance, c, s, now: now) }
    }

    public func saveInstances(_ instances: [RecordedInstance], at now: Date) async throws {
        guard !instances.isEmpty else { return }
        try await write { c, s in
            for instance in instances { try Self.upsert(instance, c, s, now: now) }
        }
    }

    static func upsert(_ i: RecordedInstance, _ c: PGConnection, _ s: String, now: Date) throws {
        let values: [String?] = [
            i.name, i.owner, i.provisioner, i.specHash, i.phase.rawValue, i.lastError, String(i.attempts),
            PostgresReads.text(i.nextAttemptAt), i.failedSpecHash, i.revision, i.protect ? "true" : "false",
            i.storageDeletionPolicy.rawValue, i.databaseDeletionPolicy.rawValue, JSONText.encode(i.labels),
            PostgresReads.text(now.timeIntervalSince1970),
        ]
        try c.queryNullable(
            """
            INSERT INTO \(s).instances (name, owner, provisioner, spec_hash, phase, last_error, attempts,
                next_attempt_at, failed_spec_hash, revision, protect, storage_policy, database_policy, labels, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
            ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, provisioner = excluded.provisioner,
                spec_hash = excluded.spec_hash, phase = excluded.phase, last_error = excluded.last_error,
                attempts = excluded.attempts, next_attempt_at = excluded.next_attempt_at,
                failed_spec_hash = excluded.failed_spec_hash, revision = excluded.revision,
                protect = excluded.protect, storage_policy = excluded.storage_policy,
                database_policy = excluded.database_policy, labels = excluded.labels, updated_at = excluded.updated_at
            """, values)
    }

    public func forgetInstance(_ name: String) async throws {
        try await write { c, s in try c.query("DELETE FROM \(s).instances WHERE name = $1", [name]) }
    }

    // MARK: Runs and journal

    public func beginRun(holder: String, revision: String?, at now: Date) async throws -> Int64 {
        try await write { c, s in
            let rows = try c.queryNullable(
                "INSERT INTO \(s).runs (holder, started_at, status, revision) VALUES ($1, $2, 'running', $3) RETURNING id",
                [holder, PostgresReads.text(now.timeIntervalSince1970), revision])
            return Int64(rows.first?.first.flatMap { $0 } ?? "") ?? 0
        }
    }

    public func finishRun(_ id: Int64, status: String, summary: String, at now: Date) async throws {
        try await write { c, s in
            try c.query(
                "UPDATE \(s).runs SET finished_at = $1, status = $2, summary = $3 WHERE id = $4",
                [PostgresReads.text(now.timeIntervalSince1970), status, summary, String(id)])
        }
    }

    public func recoverInterrupted(at now: Date) async throws -> [JournalEntry] {
        try await write { c, s in
            let entries = try PostgresReads.journal(c, s, where: "status = 'started'", lock: true)
            let time = PostgresReads.text(now.timeIntervalSince1970)
            try c.query(
                "UPDATE \(s).journal SET status = 'interrupted', finished_at = $1 WHERE status = 'started'", [time])
            try c.query(
                "UPDATE \(s).runs SET status = 'interrupted', finished_at = $1 WHERE status = 'running'", [time])
            return entries
        }
    }

    public func recordIntent(run: Int64, change: ResourceChange, at now: Date) async throws -> Int64 {
        try await write { c, s in
            let rows = try c.query(
                """
                INSERT INTO \(s).journal (run_id, instance, resource, action, reason, status, started_at)
                VALUES ($1, $2, $3, $4, $5, 'started', $6) RETURNING id
                """,
                [
                    String(run), change.instance, change.resource.rawValue, change.action.rawValue, change.reason,
                    PostgresReads.text(now.timeIntervalSince1970),
                ])
            return Int64(rows.first?.first.flatMap { $0 } ?? "") ?? 0
        }
    }

    public func recordSuccess(_ journalID: Int64, instance: String, outcome: StateOutcome, at now: Date) async throws {
        try await write { c, s in
            let time = PostgresReads.text(now.timeIntervalSince1970)
            switch outcome {
            case .recorded(let resource):
                try c.query(
                    """
                    INSERT INTO \(s).resources (instance, kind, host, driver, spec_hash, fields, outputs, updated_at)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                    ON CONFLICT (instance, kind) DO UPDATE SET host = excluded.host, driver = excluded.driver,
                        spec_hash = excluded.spec_hash, fields = excluded.fields, outputs = excluded.outputs,
                        updated_at = excluded.updated_at
                    """,
                    [
                        instance, resource.kind.rawValue, resource.host, resource.driver, resource.specHash,
                        resource.fieldsJSON ?? "{}", JSONText.encode(resource.outputs), time,
                    ])
            case .forgotten(let kind):
                try c.query(
                    "DELETE FROM \(s).resources WHERE instance = $1 AND kind = $2", [instance, kind.rawValue])
            }
            try c.query(
                "UPDATE \(s).journal SET status = 'succeeded', finished_at = $1 WHERE id = $2",
                [time, String(journalID)])
        }
    }

    public func recordFailure(_ journalID: Int64, error: String, at now: Date) async throws {
        try await write { c, s in
            try c.query(
                "UPDATE \(s).journal SET status = 'failed', error = $1, finished_at = $2 WHERE id = $3",
                [error, PostgresReads.text(now.timeIntervalSince1970), String(journalID)])
        }
    }

    // MARK: Lease

    @discardableResult
    public func acquireLease(_ me: LeaseIdentity, ttl: Duration, at now: Date, probe: ProcessProbe) async throws
        -> Int64
    {
        let s = self.s
        let epoch = try await offloaded { [session] in
            try session.transaction { c -> Int64 in
                // The epoch row serialises acquisitions, also when no lease row exists yet.
                try c.query("SELECT epoch FROM \(s).lease_epoch WHERE id = 1 FOR UPDATE")
                if let row = try c.query("SELECT \(PostgresReads.leaseColumns) FROM \(s).lease WHERE id = 1").first {
                    let holder = PostgresReads.holder(row)
                    let mine = holder.identity == me
                    let expired = holder.expiresAt <= now
                    if !mine && !expired && !me.provesGone(holder.identity, probe: probe) {
                        throw StateError.leaseHeld(holder)
                    }
                }
                let next = try c.query("UPDATE \(s).lease_epoch SET epoch = epoch + 1 WHERE id = 1 RETURNING epoch")
                let epoch = Int64(next.first?.first.flatMap { $0 } ?? "") ?? 0
                let time = PostgresReads.text(now.timeIntervalSince1970)
                try c.query(
                    """
                    INSERT INTO \(s).lease (id, holder, pid, host, boot_id, pid_namespace, start_time, epoch,
                        acquired_at, renewed_at, expires_at)
                    VALUES (1, $1, $2, $3, $4, $5, $6, $7, $8, $8, $9)
                    ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, pid = excluded.pid, host = excluded.host,
                        boot_id = excluded.boot_id, pid_namespace = excluded.pid_namespace,
                        start_time = excluded.start_time, epoch = excluded.epoch, acquired_at = excluded.acquired_at,
                        renewed_at = excluded.renewed_at, expires_at = excluded.expires_at
                    """,
                    [
                        me.description, String(me.pid), me.host, me.bootID, me.pidNamespace, me.startTime,
                        String(epoch), time,
                        PostgresReads.text(now.addingTimeInterval(ttl.seconds).timeIntervalSince1970),
                    ])
                return epoch
            }
        }
        fence.withLock { $0 = epoch }
        lostLease.withLock { $0 = false }
        return epoch
    }

    public func renewLease(ttl: Duration, at now: Date) async throws {
        guard let epoch = fence.withLock({ $0 }) else { throw StateError.leaseLost }
        let s = self.s
        let renewed = try await offloaded { [session] in
            try session.run { c in
                try c.query(
                    "UPDATE \(s).lease SET renewed_at = $1, expires_at = $2 WHERE id = 1 AND epoch = $3 RETURNING id",
                    [
                        PostgresReads.text(now.timeIntervalSince1970),
                        PostgresReads.text(now.addingTimeInterval(ttl.seconds).timeIntervalSince1970), String(epoch),
                    ]
                ).count
            }
        }
        if renewed == 0 {
            lostLease.withLock { $0 = true }
            throw StateError.leaseLost
        }
    }

    /// The epoch this store holds, if it acquired the lease.
    public var epoch: Int64? { fence.withLock { $0 } }

    public var hasLostLease: Bool { lostLease.withLock { $0 } }

    public func releaseLease() throws {
        guard let epoch = fence.withLock({ $0 }) else { return }
        try session.run { c in
            try c.query("DELETE FROM \(s).lease WHERE id = 1 AND epoch = $1", [String(epoch)])
        }
        fence.withLock { $0 = nil }
    }

    public func leaseHolder() async throws -> LeaseHolder? {
        try await read { c, s in
            try c.query("SELECT \(PostgresReads.leaseColumns) FROM \(s).lease WHERE id = 1").first.map(
                PostgresReads.holder)
        }
    }

    public func forceUnlock(_ me: LeaseIdentity, at now: Date, probe: ProcessProbe) async throws -> LeaseHolder? {
        let s = self.s
        return try await offloaded { [session] in
            try session.transaction { c -> LeaseHolder? in
                let rows = try c.query("SELECT \(PostgresReads.leaseColumns) FROM \(s).lease WHERE id = 1 FOR UPDATE")
                guard let holder = rows.first.map(PostgresReads.holder) else { return nil }
                let idle = now.timeIntervalSince(holder.renewedAt)
                if idle < StateStore.unlockIdle.seconds && !me.provesGone(holder.identity, probe: probe) {
                    throw StateError.leaseLive(holder, now: now, idle: StateStore.unlockIdle)
                }
                try c.query("DELETE FROM \(s).lease WHERE id = 1")
                return holder
            }
        }
    }

    public func exportTables() async throws -> [StateTable] {
        let schema = location.schema
        return try await read { c, s in
            let names = try c.query(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE'",
                [schema]
            ).compactMap { $0.first ?? nil }
            return try StateTable.ordered(names.filter { !StateTable.notCopied.contains($0) }).map { name in
                let columns = try c.query(
                    """
                    SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2
                    ORDER BY ordinal_position
                    """, [schema, name]
                ).compactMap { $0.first ?? nil }
                let list = columns.map(PostgresSchema.quoted).joined(separator: ", ")
                let rows = try c.query("SELECT \(list) FROM \(s).\(PostgresSchema.quoted(name))")
                return StateTable(name: name, columns: columns, rows: rows)
            }
        }
    }

    public func importTables(_ tables: [StateTable]) async throws {
        let schema = location.schema
        try await write { c, s in
            for table in tables.reversed() { try c.query("DELETE FROM \(s).\(PostgresSchema.quoted(table.name))") }
            for table in tables {
                let target = "\(s).\(PostgresSchema.quoted(table.name))"
                let names = table.columns.map(PostgresSchema.quoted).joined(separator: ", ")
                let marks = (1...max(1, table.columns.count)).map { "$\($0)" }.joined(separator: ", ")
                for row in table.rows {
                    try c.queryNullable("INSERT INTO \(target) (\(names)) VALUES (\(marks))", row)
                }
                // Identity columns continue after the copied ids.
                let identities = try c.query(
                    """
                    SELECT column_name FROM information_schema.columns
                    WHERE table_schema = $1 AND table_name = $2 AND is_identity = 'YES'
                    """, [schema, table.name]
                ).compactMap { $0.first ?? nil }
                for column in identities {
                    try c.query(
                        """
                        SELECT setval(pg_get_serial_sequence($1, $2), COALESCE((SELECT max(\(PostgresSchema.quoted(column)))
                            FROM \(target)), 0) + 1, false)
                        """, [target, column])
                }
            }
        }
    }

    /// The connection is the process's, shared with other stores of the same server: nothing to close.
    public func close() {}

    // MARK: Transactions

    /// A read transaction on the process's connection.
    func read<T: Sendable>(_ body: @escaping @Sendable (PGConnection, String) throws -> T) async throws -> T {
        let s = self.s
        return try await offloaded { [session] in try session.transaction(readOnly: true) { c in try body(c, s) } }
    }

    /// A write transaction that first checks, inside it, that this store's epoch still holds the lease.
    func write<T: Sendable>(_ body: @escaping @Sendable (PGConnection, String) throws -> T) async throws -> T {
        if lostLease.withLock({ $0 }) { throw StateError.leaseLost }
        let s = self.s
        let epoch = fence.withLock { $0 }
        do {
            return try await offloaded { [session] in
                try session.transaction { c in
                    if let epoch {
                        let current = try c.query("SELECT epoch FROM \(s).lease WHERE id = 1 FOR SHARE")
                        guard current.first?.first.flatMap({ $0 }) == String(epoch) else { throw StateError.leaseLost }
                    }
                    return try body(c, s)
                }
            }
        } catch StateError.leaseLost {
            lostLease.withLock { $0 = true }
            throw StateError.leaseLost
        }
    }
}
