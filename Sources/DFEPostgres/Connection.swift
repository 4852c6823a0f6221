import CLibPQ
import Foundation

/// A failure reported by libpq or the server, with the SQLSTATE when the server sent one.
package struct PGFailure: Error, Sendable, CustomStringConvertible {
    package var message: String
    package var sqlState: String?

    package init(message: String, sqlState: String? = nil) {
        self.message = message
        self.sqlState = sqlState
    }

    package var description: String { message }
}

/// Connection settings handed to `PQconnectdbParams` as keyword/value pairs.
package struct PGConnectParameters: Sendable {
    package var host: String
    package var port: Int
    package var database: String
    package var user: String
    package var password: Secret?
    package var sslmode: String
    package var connectTimeoutSeconds: Int

    package init(
        host: String, port: Int, database: String, user: String, password: Secret?, sslmode: String,
        connectTimeoutSeconds: Int
    ) {
        self.host = host
        self.port = port
        self.database = database
        self.user = user
        self.password = password
        self.sslmode = sslmode
        self.connectTimeoutSeconds = connectTimeoutSeconds
    }

    /// The keyword/value pairs, in libpq's vocabulary (never a concatenated conninfo string).
    var keywords: [(String, String)] {
        var pairs: [(String, String)] = [
            ("host", host),
            ("port", String(port)),
            ("dbname", database),
            ("user", user),
            ("connect_timeout", String(connectTimeoutSeconds)),
            ("sslmode", sslmode),
            ("application_name", "dfe"),
        ]
        if let password, !password.value.isEmpty { pairs.append(("password", password.value)) }
        return pairs
    }
}

/// A blocking libpq connection; use it from one thread and let it go out of scope to close it.
package final class PGConnection {
    private let handle: OpaquePointer
    /// Strings that must never appear in messages (passwords).
    private let secrets: [String]

    private init(handle: OpaquePointer, secrets: [String]) {
        self.handle = handle
        self.secrets = secrets
    }

    deinit { PQfinish(handle) }

    /// Opens a connection, or throws libpq's message (with any password redacted).
    package static func connect(_ parameters: PGConnectParameters) throws(PGFailure) -> PGConnection {
        let pairs = parameters.keywords
        let secrets = [parameters.password?.value].compactMap { $0 }.filter { !$0.isEmpty }
        let keys = pairs.map { strdup($0.0) }
        let values = pairs.map { strdup($0.1) }
        defer {
            for pointer in keys + values { free(pointer) }
        }
        var keyPointers: [UnsafePointer<CChar>?] = keys.map { UnsafePointer($0) }
        var valuePointers: [UnsafePointer<CChar>?] = values.map { UnsafePointer($0) }
        keyPointers.append(nil)
        valuePointers.append(nil)
        let raw = keyPointers.withUnsafeBufferPointer { keyBuffer in
            valuePointers.withUnsafeBufferPointer { valueBuffer in
                PQconnectdbParams(keyBuffer.baseAddress, valueBuffer.baseAddress, 0)
            }
        }
        guard let raw else { throw PGFailure(message: "out of memory allocating a libpq connection") }
        guard PQstatus(raw) == CONNECTION_OK else {
            let message = redact(cleanMessage(PQerrorMessage(raw)), secrets: secrets)
            PQfinish(raw)
            throw PGFailure(message: message.isEmpty ? "connection failed" : message)
        }
        // Silence NOTICEs (e.g. "does not exist, skipping"), which libpq would print to stderr.
        PQsetNoticeProcessor(raw, { _, _ in }, nil)
        return PGConnection(handle: raw, secrets: secrets)
    }

    /// Runs a statement with bind parameters and returns its rows (text format; NULL as nil).
    @discardableResult
    package func query(_ sql: String, _ parameters: [String] = []) throws(PGFailure) -> [[String?]] {
        let copies = parameters.map { strdup($0) }
        defer {
            for pointer in copies { free(pointer) }
        }
        let pointers: [UnsafePointer<CChar>?] = copies.map { UnsafePointer($0) }
        let result = pointers.withUnsafeBufferPointer { buffer in
            PQexecParams(handle, sql, Int32(parameters.count), nil, buffer.baseAddress, nil, nil, 0)
        }
        return try rows(of: result)
    }

    /// Runs a statement with bind parameters that may be NULL (nil) and returns its rows.
    @discardableResult
    package func queryNullable(_ sql: String, _ parameters: [String?]) throws(PGFailure) -> [[String?]] {
        let copies = parameters.map { $0.map { strdup($0) } ?? nil }
        defer {
            for pointer in copies { free(pointer) }
        }
        let pointers: [UnsafePointer<CChar>?] = copies.map { $0.map { UnsafePointer($0) } }
        let result = pointers.withUnsafeBufferPointer { buffer in
            PQexecParams(handle, sql, Int32(parameters.count), nil, buffer.baseAddress, nil, nil, 0)
        }
        return try rows(of: result)
    }

    /// Runs one statement without parameters (DDL with already-quoted identifiers and literals).
    package func execute(_ sql: String) throws(PGFailure) {
        try rows(of: PQexec(handle, sql))
    }

    /// The SCRAM-SHA-256 verifier of `password` for `role`, computed client-side, so the plain password never
    /// travels in SQL (where server logs or pg_stat_statements could keep it).
    func encryptedPassword(_ password: String, role: String) throws(PGFailure) -> String {
        guard let encrypted = PQencryptPasswordConn(handle, password, role, "scram-sha-256") else {
            throw PGFailure(message: "cannot compute the SCRAM verifier: \(Self.cleanMessage(PQerrorMessage(handle)))")
        }
        defer { PQfreemem(encrypted) }
        return String(cString: encrypted)
    }

    /// Whether the connection to the server is gone (it must then be opened again).
    package var isBroken: Bool { PQstatus(handle) != CONNECTION_OK }

    /// The server version as an integer (150004 for 15.4).
    var serverVersion: Int { Int(PQserverVersion(handle)) }

    @discardableResult
    private func rows(of result: OpaquePointer?) throws(PGFailure) -> [[String?]] {
        guard let result else {
            throw PGFailure(message: redact(Self.cleanMessage(PQerrorMessage(handle)), secrets: secrets))
        }
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK else {
            var message = Self.cleanMessage(PQresultErrorMessage(result))
            if message.isEmpty { message = Self.cleanMessage(PQerrorMessage(handle)) }
            let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            throw PGFailure(message: Self.redact(message, secrets: secrets), sqlState: state)
        }
        let rowCount = PQntuples(result)
        let columnCount = PQnfields(result)
        var rows: [[String?]] = []
        rows.reserveCapacity(Int(rowCount))
        for row in 0..<rowCount {
            var values: [String?] = []
            for column in 0..<columnCount {
                if PQgetisnull(result, row, column) != 0 {
                    values.append(nil)
                } else {
                    values.append(PQgetvalue(result, row, column).map { String(cString: $0) })
                }
            }
            rows.append(values)
        }
        return rows
    }

    private func redact(_ message: String, secrets: [String]) -> String { Self.redact(message, secrets: secrets) }

    /// Replaces every secret in `message` with `(sensitive)`.
    static func redact(_ message: String, secrets: [String]) -> String {
        var text = message
        for secret in secrets where !secret.isEmpty {
            text = text.replacingOccurrences(of: secret, with: "(sensitive)")
        }
        return text
    }

    /// libpq messages end with newlines and may span lines: make them one line.
    private static func cleanMessage(_ pointer: UnsafePointer<CChar>?) -> String {
        guard let pointer else { return "" }
        return String(cString: pointer)
            .split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
            .joined(separator: "; ")
    }
}

/// A secret string that never prints itself.
package struct Secret: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    package var value: String

    package init(_ value: String) { self.value = value }

    package var description: String { "(sensitive)" }
    package var debugDescription: String { "(sensitive)" }
    package var customMirror: Mirror { Mirror(self, children: []) }
}
