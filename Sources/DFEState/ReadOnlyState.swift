import Foundation
import GRDB

/// Reading the state file without changing a byte, mode or mtime of it or of its directory.
///
/// - No `-wal` beside it (no run in progress): the file is opened `immutable=1`, so SQLite takes no lock and
///   creates no `-wal`/`-shm`; the read is checked afterwards against the file's identity (inode, size, mtime)
///   and the absence of a `-wal`, and retried the other way if a writer started meanwhile.
/// - A `-wal` and `-shm` beside it (a run in progress, or one killed): `mode=ro&readonly_shm=1` reads the
///   committed WAL content through the shared memory without writing to it.
/// - A `-wal` without a `-shm` (a copied state), or one whose recovery needs a writer: only then are the two
///   files read from a private copy (mode 0700 under the temp directory, removed after the read).
///
/// Works on a read-only file in a read-only directory. A state written by a newer dfe is refused.
extension StateStore {
    static func read<T>(url: URL, _ body: (Database) throws -> T) throws(StateError) -> T? {
        let path = url.path
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        do {
            for _ in 0..<5 {
                if FileManager.default.fileExists(atPath: path + "-wal") {
                    if FileManager.default.fileExists(atPath: path + "-shm") {
                        do {
                            return try readOnce(uri: uri(path, "mode=ro&readonly_shm=1"), path: path, body)
                        } catch let error as DatabaseError {
                            // A WAL that needs a recovery this read-only connection may not run: read a copy.
                            _ = error
                        }
                    }
                    return try readCopy(url: url, body)
                }
                let before = FileIdentity(path)
                let result = try readOnce(uri: uri(path, "immutable=1"), path: path, body)
                if before != nil, before == FileIdentity(path),
                    !FileManager.default.fileExists(atPath: path + "-wal")
                {
                    return result
                }
            }
            return try readCopy(url: url, body)
        } catch let error as StateError {
            throw error
        } catch {
            throw StateError.database(path: path, message: "\(error)")
        }
    }

    /// An SQLite URI for a file path (percent-encoded) with query parameters.
    static func uri(_ path: String, _ query: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "?#%")
        let encoded = path.addingPercentEncoding(withAllowedCharacters: allowed) ?? path
        return "file:\(encoded)?\(query)"
    }

    /// One read-only connection: refuses a newer schema, runs `body`, closes without writing.
    static func readOnce<T>(uri: String, path: String, _ body: (Database) throws -> T) throws -> T {
        var config = Configuration()
        config.readonly = true
        config.busyMode = .timeout(3)
        let queue = try DatabaseQueue(path: uri, configuration: config)
        defer { try? queue.close() }
        return try queue.read { db in
            if try db.tableExists("grdb_migrations"), try Schema.migrator.hasBeenSuperseded(db) {
                throw StateError.newerSchema(path: path)
            }
            return try body(db)
        }
    }

    /// Reads a private copy of the file and its WAL (only when the WAL has no shared-memory file beside it).
    static func readCopy<T>(url: URL, _ body: (Database) throws -> T) throws -> T {
        let fileManager = FileManager.default
        let directory = fileManager.temporaryDirectory.appendingPathComponent("dfe-snapshot-\(UUID().uuidString)")
        try fileManager.createDirectory(
            at: directory, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        defer { try? fileManager.removeItem(at: directory) }
        let copy = directory.appendingPathComponent("state.sqlite")
        if fileManager.fileExists(atPath: url.path + "-wal") {
            try fileManager.copyItem(atPath: url.path + "-wal", toPath: copy.path + "-wal")
        }
        try fileManager.copyItem(at: url, to: copy)
        return try readOnce(uri: uri(copy.path, "mode=ro"), path: url.path, body)
    }
}

/// What identifies one version of a file: inode, size and modification time.
struct FileIdentity: Equatable {
    var inode: UInt64
    var size: Int64
    var seconds: Int
    var nanoseconds: Int

    init?(_ path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        seconds = info.st_mtim.tv_sec
        nanoseconds = info.st_mtim.tv_nsec
    }
}
