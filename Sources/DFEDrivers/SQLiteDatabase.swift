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

    /// Who owns the database at `path`: `.owner(name)`, `.unowned` (not made by dfe), or `.absent`.
    enum Ownership: Equatable {
        case absent
        case owner(String)
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
        let prepared = sqlite3_prepare_v2(handle, "SELECT instance FROM dfe_owner LIMIT 1", -1, &statement, nil)
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
        return .owner(String(cString: text))
    }

    /// Identity of the file as last seen (device, inode, size, modification time): when unchanged, the
    /// owner record cannot have changed either, and observing needs no open.
    static func fileIdentity(_ path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return "\(info.st_dev):\(info.st_ino):\(info.st_size):\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
    }

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
        switch Self.ownership(path) {
        case .absent: return .missing
        case .owner(let owner) where owner == context.name: return .ok
        case .owner(let owner): return .drifted("database file belongs to instance '\(owner)'")
        case .unowned(let why): return .drifted("database file is foreign (\(why))")
        case .unreadable(let why): throw DriverError("cannot read database \(path): \(why)", retryable: true)
        }
    }

    public func apply(_ context: ResourceContext) async throws -> [String: String] {
        guard let path = context.fields["path"] else { throw DriverError("no database path", retryable: false) }
        let name = context.name
        let root = self.root
        try await offloaded {
            try FileSystem.makeDirectory(root, mode: 0o750)
            switch Self.ownership(path) {
            case .owner(let owner) where owner == name:
                return
            case .unreadable(let why):
                throw DriverError("cannot read database \(path): \(why); not touching it", retryable: true)
            case .owner, .unowned:
                let aside = Self.asideName(for: path)
                guard rename(path, aside) == 0 else {
                    throw DriverError("cannot move foreign database \(path) aside: \(String(cString: strerror(errno)))")
                }
            case .absent:
                break
            }
            try Self.create(path, owner: name)
        }
        var outputs = ["driver": driverName, "path": path]
        outputs["fileIdentity"] = Self.fileIdentity(path)
        return outputs
    }

    /// A name beside `path` that does not exist yet: `NAME.sqlite.foreign-SECONDS[-N]`.
    static func asideName(for path: String) -> String {
        let base = "\(path).foreign-\(Int(Date().timeIntervalSince1970))"
        var candidate = base
        var counter = 1
        while FileSystem.entry(candidate) != .absent {
            counter += 1
            candidate = "\(base)-\(counter)"
        }
        return candidate
    }

    /// Creates the database under a temporary name, records the owner, checkpoints and renames it into place.
    static func create(_ path: String, owner: String) throws {
        let temp = FileSystem.temporaryPath(for: path)
        for suffix in ["", "-wal", "-shm", "-journal"] { unlink(temp + suffix) }
        var handle: OpaquePointer?
        guard sqlite3_open_v2(temp, &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nil) == SQLITE_OK else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close_v2(handle)
            throw DriverError("cannot create database \(path): \(message)")
        }
        let escaped = owner.replacingOccurrences(of: "'", with: "''")
        let sql = """
            PRAGMA journal_mode = WAL;
            BEGIN;
            CREATE TABLE IF NOT EXISTS dfe_owner (instance TEXT NOT NULL, created_at TEXT NOT NULL);
            DELETE FROM dfe_owner;
            INSERT INTO dfe_owner (instance, created_at) VALUES ('\(escaped)', datetime('now'));
            COMMIT;
            PRAGMA wal_checkpoint(TRUNCATE);
            """
        var error: UnsafeMutablePointer<CChar>?
        let status = sqlite3_exec(handle, sql, nil, nil, &error)
        let message = error.map { String(cString: $0) } ?? ""
        sqlite3_free(error)
        sqlite3_close_v2(handle)
        guard status == SQLITE_OK else {
            unlink(temp)
            throw DriverError("cannot initialise database \(path): \(message)")
        }
        chmod(temp, 0o640)
        guard rename(temp, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temp)
            throw DriverError("cannot move database into place at \(path): \(reason)")
        }
        for suffix in ["-wal", "-shm"] { unlink(temp + suffix) }
    }

    public func delete(_ context: ResourceContext) async throws {
        guard let path = context.recorded?.outputs["path"] ?? context.recorded?.fields["path"] else { return }
        guard FileSystem.isBelow(path, root: root) else {
            throw DriverError("refusing to delete \(path): not below \(root)", retryable: false)
        }
        let name = context.name
        try await offloaded {
            switch Self.ownership(path) {
            case .absent:
                return
            case .owner(let owner) where owner == name:
                for suffix in ["", "-wal", "-shm"] { unlink(path + suffix) }
            case .owner(let owner):
                throw DriverError("refusing to delete \(path): it belongs to instance '\(owner)'", retryable: false)
            case .unowned(let why), .unreadable(let why):
                throw DriverError("refusing to delete \(path): not a dfe database (\(why))", retryable: false)
            }
        }
    }
}
