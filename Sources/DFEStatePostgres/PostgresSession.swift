import DFEPostgres
import DFEState
import Foundation
import Synchronization

/// The one libpq connection a process keeps to a state server, used by one caller at a time.
///
/// Opened on first use and opened again after the server dropped it. Blocking: call it from `offloaded` work.
final class PostgresSession: @unchecked Sendable {
    let location: PostgresStateURL
    private let lock = NSLock()
    private var connection: PGConnection?

    init(location: PostgresStateURL) {
        self.location = location
    }

    /// The process-wide sessions, one per server, database and user (schemas share it).
    private static let sessions = Mutex<[String: PostgresSession]>([:])

    /// The session of this process for `location`'s server.
    static func shared(_ location: PostgresStateURL) -> PostgresSession {
        let key = "\(location.user)@\(location.host):\(location.port)/\(location.database)?\(location.sslmode)"
        return sessions.withLock { sessions in
            if let session = sessions[key] { return session }
            let session = PostgresSession(location: location)
            sessions[key] = session
            return session
        }
    }

    /// Runs `body` with the connection held exclusively; libpq failures become `.database` errors.
    func run<T>(_ body: (PGConnection) throws -> T) throws(StateError) -> T {
        lock.lock()
        defer { lock.unlock() }
        let connection: PGConnection
        if let current = self.connection {
            connection = current
        } else {
            do {
                connection = try open()
            } catch {
                throw StateError.database(path: location.description, message: "\(error)")
            }
            self.connection = connection
        }
        do {
            return try body(connection)
        } catch {
            if connection.isBroken { self.connection = nil }
            if let error = error as? StateError { throw error }
            throw StateError.database(path: location.description, message: "\(error)")
        }
    }

    /// Runs `body` in one transaction (read-only when asked), committing on success and rolling back otherwise.
    func transaction<T>(readOnly: Bool = false, _ body: (PGConnection) throws -> T) throws(StateError) -> T {
        try run { connection in
            try connection.execute(readOnly ? "BEGIN READ ONLY" : "BEGIN")
            do {
                let result = try body(connection)
                try connection.execute("COMMIT")
                return result
            } catch {
                try? connection.execute("ROLLBACK")
                throw error
            }
        }
    }

    /// Drops the connection (the next use opens a new one).
    func disconnect() {
        lock.lock()
        defer { lock.unlock() }
        connection = nil
    }

    private func open() throws(PGFailure) -> PGConnection {
        // No password: libpq reads PGPASSWORD, PGPASSFILE or ~/.pgpass itself.
        try PGConnection.connect(
            PGConnectParameters(
                host: location.host, port: location.port, database: location.database, user: location.user,
                password: nil, sslmode: location.sslmode, connectTimeoutSeconds: 10))
    }
}
