public import DFECore
public import DFEProvision
import Foundation
import GRDBSQLite

/// `database/sqlite`: one SQLite file per instance, in WAL mode, recording which instance owns it.
///
/// A file owned by anything else is never overwritten: it is moved aside to `NAME.sqlite.foreign-TIME` and kept.
public struct SQLiteDatabaseProvisioner: DatabaseProvisioner {
    public let driverName = "sqlite"
    public let root: String

    public init(root: String) { self.root = root }

    /// Builds the driver from its `{root}` option.
    public static func make(_ options: DriverOptions, _ environment: DriverEnvironment) throws
        -> SQLiteDatabaseProvisioner
    {
        try options.allow(["root"])
        return SQLiteDatabaseProvisioner(root: environment.resolve(options.optional("root") ?? "var/databases").path)
    }

    public func fields(for spec: InstanceSpec, host: HostConfig, dependencies: [ResourceKind: FieldSet]) -> FieldSet {
        FieldSet(["driver": driverName, "path": "\(root)/\(spec.name).sqlite"])
    }

    /// Who owns the database at `path`, as its `dfe_owner` row says.
    enum Ownership: Equatable {
        case absent
        /// A full ownership record (instance, owner, state id).
        case record(OwnershipRecord)
        /// A row written by a dfe before ownership records: the instance name only.
        case legacy(String)
        /// A readable database (or file) without dfe's owner record.
        case unowned(String)
        /// Could not be read right now (permissions, too many open files, a checkpoint in progress): retry,
        /// never treat as foreign.
        case unreadable(String)
    }

    /// Reads the owner record without creating `-wal`/`-shm` files (immutable, read-only open).
    static func ownership(_ path: String) -> Ownership {
        switch FileSystem.entry(path) {
        case .absent: return .absent
        case .directory, .other: return .unowned("not a regular file")
        case .file: break
        }
        var handle: OpaquePointer?
        let uri =
            "file:" + (path.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? path) + "?immutable=1"
        defer { sqlite3_close_v2(handle) }
        guard access(path, R_OK) == 0 else { return .unreadable(String(cString: strerror(errno))) }
        guard sqlite3_open_v2(uri, &handle, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, nil) == SQLITE_OK else {
            return .unreadable(handle.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open")
        }
        var statement: OpaquePointer?
        defer { sqlite3_finalize(statement) }
        var legacy = false
        var prepared = sqlite3_prepare_v2(
            handle, "SELECT instance, owner, state_id FROM dfe_owner LIMIT 1", -1, &statement, nil)
        if prepared != SQLITE_OK, let handle, String(cString: sqlite3_errmsg(handle)).contains("no such column") {
            legacy = true
            prepared = sqlite3_prepare_v2(handle, "SELECT instance FROM dfe_owner LIMIT 1", -1, &statement, nil)
        }
        guard prepared == SQLITE_OK else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "error \(prepared)"
            // Only a readable database without our table is foreign; anything else is a read failure.
            if message.contains("no such table") { return .unowned("no dfe owner record") }
            if prepared == SQLITE_NOTADB { return .unowned("not an SQLite database") }
            return .unreadable(message)
        }
        let stepped = sqlite3_step(statement)
        guard stepped == SQLITE_ROW, let text = sqlite3_column_text(statement, 0) else {
            if stepped == SQLITE_DONE { return .unowned("empty dfe owner record") }
            return .unreadable(handle.map { String(cString: sqlite3_errmsg($0)) } ?? "error \(stepped)")
        }
        let instance = String(cString: text)
        if legacy { return .legacy(instance) }
        let owner = sqlite3_column_text(statement, 1).map { String(cString: $0) } ?? ""
        let stateID = sqlite3_column_text(statement, 2).map { String(cString: $0) } ?? ""
        guard !stateID.isEmpty else { return .legacy(instance) }
        return .record(OwnershipRecord(instance: instance, owner: owner, stateID: stateID))
    }

    /// Whether the database at `path` may be used for `context`: ours, ours but needing its record upgraded, or a
    /// conflict (with what to do).
    enum Verdict: Equatable {
        case absent
        case ours
        /// Made by this state (it is recorded) with a row from before ownership records: stamp the full record.
        case oursWithoutRecord
        case conflict(String)
        case unreadable(String)
    }

    static func verdict(_ path: String, _ context: ResourceContext) -> Verdict {
        let object = "database file \(path)"
        switch ownership(path) {
        case .absent: return .absent
        case .unreadable(let why): return .unreadable(why)
        case .record(let record):
            switch OwnershipRecord.verdict(found: record, for: context, object: object) {
            case .ours: return .ours
            case .restamp: return .oursWithoutRecord
            case .conflict(let message): return .conflict(message)
            }
        case .legacy(let instance) where instance == context.name && context.recorded != nil:
            return .oursWithoutRecord
        case .legacy(let instance):
            return .conflict(
                "\(object) belongs to instance '\(instance)' (no state id: made by an older dfe or another workspace), not to this instance of this state; dfe never adopts or deletes it: move it away by hand, then reconcile"
            )
        case .unowned(let why):
            return .conflict(
                "\(object) is not a dfe database of this instance (\(why)); dfe never adopts, overwrites or deletes it: move it away by hand, then reconcile"
            )
        }
    }

    /// Identity of the file as last seen (device, inode, size, modification time): when unchanged, the
    /// owner record cannot have changed either, and observing needs no open.
    static func fileIdentity(_ path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return "\(info.st_dev):\(info.st_ino):\(info.st_size):\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
    }

    public var confinedRoots: [String] { [root] }

    public func observe(_ context: ResourceContext) async throws -> ObservedStatus {
        guard let path = context.fields["path"] ?? context.recorded?.outputs["path"] else { return .missing }
        if let old = context.recorded?.outputs["path"], old != path, FileSystem.entry(old) != .absent {
            return .conflict(
                "database would move from \(old) to \(path) (root changed); dfe does not move customer data: move the file by hand, then reconcile — or revert the change"
            )
        }
        if let known = context.recorded?.outputs["fileIdentity"], known == Self.fileIdentity(path),
            context.recorded?.outputs["path"] == path
        {
            return .ok
        }
        switch Self.verdict(path, context) {
        case .absent: return .missing
        case .ours: return .ok
        case .oursWithoutRecord: return .drifted("database file has no ownership record yet")
        case .conflict(let message): return .conflict(message)
        case .unreadable(let why): throw DriverError("cannot read database \(path): \(why)", retryable: true)
        }
    }

    public func apply(_ context: ResourceContext) async throws -> [String: String] {
        guard let path = context.fields["path"] else {
            throw DriverError("no database path", class: .terminal(.configuration))
        }
        guard let record = context.ownershipRecord else {
            throw DriverError("no state id: cannot record who owns \(path)", class: .terminal(.configuration))
        }
        let root = self.root
        try await offloaded {
            try FileSystem.makeDirectory(root, mode: 0o750)
            switch Self.verdict(path, context) {
            case .ours:
                return
            case .oursWithoutRecord:
                try Self.stamp(path, record: record)
                return
            case .unreadable(let why):
                throw DriverError("cannot read database \(path): \(why); not touching it", retryable: true)
            case .conflict(let message):
                throw DriverError.conflict(message)
            case .absent:
                break
            }
            try Self.create(path, record: record)
        }
        var outputs = ["driver": driverName, "path": path]
        outputs["fileIdentity"] = Self.fileIdentity(path)
        return outputs
    }

    /// The SQL of the ownership row (literals quoted for SQLite).
    static func ownerRowSQL(_ record: OwnershipRecord) -> String {
        func quoted(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "''") + "'" }
        return """
            DELETE FROM dfe_owner;
            INSERT INTO dfe_owner (instance, owner, state_id, created_at)
                VALUES (\(quoted(record.instance)), \(quoted(record.owner)), \(quoted(record.stateID)), datetime('now'));
            """
    }

    /// Runs `sql` on the database at `path` (read-write, not creating it).
    static func execute(_ sql: String, at path: String, flags: Int32 = SQLITE_OPEN_READWRITE) throws {
        var handle: OpaquePointer?
        guard sqlite3_open_v2(path, &handle, flags, nil) == SQLITE_OK else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close_v2(handle)
            throw DriverError("cannot open database \(path): \(message)")
        }
        var error: UnsafeMutablePointer<CChar>?
        let status = sqlite3_exec(handle, sql, nil, nil, &error)
        let message = error.map { String(cString: $0) } ?? ""
        sqlite3_free(error)
        sqlite3_close_v2(handle)
        guard status == SQLITE_OK else { throw DriverError("cannot initialise database \(path): \(message)") }
    }

    /// Upgrades the owner row of a database made by an older dfe (recorded in this state) to a full record.
    static func stamp(_ path: String, record: OwnershipRecord) throws {
        for column in ["owner", "state_id"] {
            // Already there when only the id was empty: a duplicate column is fine.
            try? execute("ALTER TABLE dfe_owner ADD COLUMN \(column) TEXT NOT NULL DEFAULT ''", at: path)
        }
        try execute("BEGIN;\n\(ownerRowSQL(record))\nCOMMIT;\nPRAGMA wal_checkpoint(TRUNCATE);", at: path)
    }

    /// Suffixes of the files SQLite may leave beside a database.
    static let companionSuffixes = ["-wal", "-shm", "-journal"]

    /// Creates the database under a temporary name (mode 0600 from the start), records the owner, checkpoints
    /// and renames it into place.
    static func create(_ path: String, record: OwnershipRecord) throws {
        let temp = FileSystem.temporaryPath(for: path)
        for suffix in [""] + companionSuffixes { unlink(temp + suffix) }
        // Created here, exclusive and private, so SQLite never makes it with the umask's mode.
        let descriptor = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw DriverError("cannot create database \(temp): \(String(cString: strerror(errno)))")
        }
        close(descriptor)
        let sql = """
            PRAGMA journal_mode = WAL;
            BEGIN;
            CREATE TABLE IF NOT EXISTS dfe_owner (
                instance TEXT NOT NULL, owner TEXT NOT NULL DEFAULT '', state_id TEXT NOT NULL DEFAULT '',
                created_at TEXT NOT NULL);
            \(ownerRowSQL(record))
            COMMIT;
            PRAGMA wal_checkpoint(TRUNCATE);
            """
        do {
            try execute(sql, at: temp)
        } catch {
            for suffix in [""] + companionSuffixes { unlink(temp + suffix) }
            throw error
        }
        chmod(temp, 0o640)
        guard rename(temp, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temp)
            throw DriverError("cannot move database into place at \(path): \(reason)")
        }
        for suffix in companionSuffixes { unlink(temp + suffix) }
    }

    public func delete(_ context: ResourceContext) async throws {
        guard let path = context.recorded?.outputs["path"] ?? context.recorded?.fields["path"] else { return }
        // Only a file directly in the root: nothing below it is followed.
        guard (path as NSString).deletingLastPathComponent == root,
            (path as NSString).lastPathComponent == "\(context.name).sqlite"
        else {
            throw DriverError(
                "refusing to delete \(path): not this instance's database file in \(root)",
                class: .terminal(.configuration))
        }
        try await offloaded {
            // A create killed midway leaves its temporary database: always ours, always removed.
            let temp = FileSystem.temporaryPath(for: path)
            for suffix in [""] + Self.companionSuffixes { unlink(temp + suffix) }
            switch Self.verdict(path, context) {
            case .absent:
                return
            case .ours, .oursWithoutRecord:
                for suffix in [""] + Self.companionSuffixes {
                    if unlink(path + suffix) != 0, errno != ENOENT {
                        throw DriverError(
                            "cannot delete \(path + suffix): \(String(cString: strerror(errno)))",
                            class: errno == EACCES || errno == EPERM ? .terminal(.permission) : .retryable)
                    }
                }
            case .conflict(let message):
                throw DriverError.conflict("refusing to delete: " + message)
            case .unreadable(let why):
                throw DriverError("refusing to delete \(path): cannot read its owner record (\(why))")
            }
        }
    }
}
