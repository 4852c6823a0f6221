public import Foundation
import GRDB

/// Reads and writes customer data in an instance's SQLite database the way an application would.
public enum SQLiteShell {
    /// Runs SQL statements against a database file.
    public static func execute(_ path: String, _ sql: String) throws {
        let queue = try DatabaseQueue(path: path)
        try queue.write { db in try db.execute(sql: sql) }
        try queue.close()
    }

    /// The first column of the first row of a query, as text.
    public static func query(_ path: String, _ sql: String) throws -> String? {
        let queue = try DatabaseQueue(path: path)
        defer { try? queue.close() }
        return try queue.read { db in try String.fetchOne(db, sql: sql) }
    }
}
