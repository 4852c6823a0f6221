import DFECore
import DFEPostgres
import DFEState
import Foundation

/// The state's queries, shared by the read-only backend and the read-write store. `s` is the quoted schema.
enum PostgresReads {
    static func text(_ value: Double) -> String { "\(value)" }
    static func text(_ value: Double?) -> String? { value.map { "\($0)" } }

    /// Every instance with its resources (without applied fields when `withFields` is false).
    static func instances(_ c: PGConnection, _ s: String, withFields: Bool) throws -> [String: RecordedInstance] {
        var result: [String: RecordedInstance] = [:]
        let rows = try c.query(
            """
            SELECT name, owner, provisioner, spec_hash, phase, last_error, attempts, next_attempt_at, failed_spec_hash,
                revision, protect, storage_policy, database_policy, labels FROM \(s).instances
            """)
        for row in rows {
            let name = row[0] ?? ""
            result[name] = RecordedInstance(
                name: name, owner: row[1] ?? "", provisioner: row[2] ?? "", specHash: row[3] ?? "",
                phase: Phase(rawValue: row[4] ?? "") ?? .pending, lastError: row[5], attempts: Int(row[6] ?? "") ?? 0,
                nextAttemptAt: row[7].flatMap(Double.init), failedSpecHash: row[8], revision: row[9],
                protect: row[10] == "t", storageDeletionPolicy: DeletionPolicy(rawValue: row[11] ?? "") ?? .retain,
                databaseDeletionPolicy: DeletionPolicy(rawValue: row[12] ?? "") ?? .retain,
                labels: JSONText.decodeStringMap(row[13] ?? "{}") ?? [:])
        }
        let columns = "instance, kind, host, driver, spec_hash, outputs" + (withFields ? ", fields" : "")
        for row in try c.query("SELECT \(columns) FROM \(s).resources") {
            guard let instance = row[0], let kind = ResourceKind(rawValue: row[1] ?? "") else { continue }
            result[instance]?.resources[kind] = RecordedResource(
                kind: kind, host: row[2] ?? "", driver: row[3] ?? "", specHash: row[4] ?? "",
                fieldsJSON: withFields ? (row[6] ?? "{}") : nil,
                outputs: JSONText.decodeStringMap(row[5] ?? "{}") ?? [:])
        }
        return result
    }

    /// The applied fields of some resources.
    static func fields(_ c: PGConnection, _ s: String, keys: [ResourceKey]) throws -> [ResourceKey: FieldSet] {
        var result: [ResourceKey: FieldSet] = [:]
        guard !keys.isEmpty else { return result }
        // One round trip for any number of keys: two parallel arrays unnested into rows.
        let instances = arrayLiteral(keys.map(\.instance))
        let kinds = arrayLiteral(keys.map(\.kind.rawValue))
        let rows = try c.query(
            """
            SELECT r.instance, r.kind, r.fields FROM \(s).resources r
            JOIN unnest($1::text[], $2::text[]) AS k(instance, kind) ON r.instance = k.instance AND r.kind = k.kind
            """, [instances, kinds])
        for row in rows {
            guard let instance = row[0], let kind = ResourceKind(rawValue: row[1] ?? ""), let text = row[2] else {
                continue
            }
            result[ResourceKey(instance, kind)] = FieldSet(JSONText.decodeStringMap(text) ?? [:])
        }
        return result
    }

    /// A PostgreSQL array literal of text values (`{"a","b"}`), every element quoted and escaped.
    static func arrayLiteral(_ values: [String]) -> String {
        let elements = values.map { value in
            "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                + "\""
        }
        return "{" + elements.joined(separator: ",") + "}"
    }

    static let journalColumns =
        "id, run_id, instance, resource, action, reason, status, error, started_at, finished_at"

    /// Journal entries matching `clause` (with `$1`... bound to `parameters`), the newest `limit`, oldest first.
    static func journal(
        _ c: PGConnection, _ s: String, where clause: String, _ parameters: [String] = [], limit: Int = -1,
        lock: Bool = false
    ) throws -> [JournalEntry] {
        let limitText = limit >= 0 ? "LIMIT \(limit)" : ""
        let sql =
            lock
            ? "SELECT \(journalColumns) FROM \(s).journal WHERE \(clause) ORDER BY id FOR UPDATE"
            : """
            SELECT * FROM (SELECT \(journalColumns) FROM \(s).journal WHERE \(clause) ORDER BY id DESC \(limitText)) j
            ORDER BY id
            """
        return try c.query(sql, parameters).compactMap(entry)
    }

    static func entry(_ row: [String?]) -> JournalEntry? {
        guard let kind = ResourceKind(rawValue: row[3] ?? ""), let action = Action(rawValue: row[4] ?? ""),
            let status = JournalEntry.Status(rawValue: row[6] ?? ""), let id = Int64(row[0] ?? ""),
            let run = Int64(row[1] ?? ""), let started = Double(row[8] ?? "")
        else { return nil }
        return JournalEntry(
            id: id, runID: run, instance: row[2] ?? "", resource: kind, action: action, reason: row[5] ?? "",
            status: status, error: row[7], startedAt: Date(timeIntervalSince1970: started),
            finishedAt: row[9].flatMap(Double.init).map { Date(timeIntervalSince1970: $0) })
    }

    static let leaseColumns =
        "pid, host, boot_id, pid_namespace, start_time, epoch, acquired_at, renewed_at, expires_at"

    static func holder(_ row: [String?]) -> LeaseHolder {
        let identity = LeaseIdentity(
            pid: Int32(row[0] ?? "") ?? 0, host: row[1] ?? "", bootID: row[2] ?? "", pidNamespace: row[3] ?? "",
            startTime: row[4] ?? "")
        let acquired = Double(row[6] ?? "") ?? 0
        return LeaseHolder(
            identity: identity, epoch: Int64(row[5] ?? "") ?? 0, acquiredAt: Date(timeIntervalSince1970: acquired),
            renewedAt: Date(timeIntervalSince1970: Double(row[7] ?? "") ?? acquired),
            expiresAt: Date(timeIntervalSince1970: Double(row[8] ?? "") ?? 0))
    }

    /// Whether the schema holds a state, and refuses one written by a newer dfe.
    static func stateExists(_ c: PGConnection, _ schema: String, display: String) throws -> Bool {
        let s = PostgresSchema.quoted(schema)
        let table = try c.query("SELECT to_regclass($1)", ["\(s).schema_migrations"])
        guard table.first?.first.flatMap({ $0 }) != nil else { return false }
        let applied = Set(try c.query("SELECT identifier FROM \(s).schema_migrations").compactMap { $0.first ?? nil })
        guard applied.isSubset(of: PostgresSchema.known) else { throw StateError.newerSchema(path: display) }
        return !applied.isEmpty
    }
}
