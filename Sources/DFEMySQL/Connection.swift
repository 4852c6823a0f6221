import CMariaDB
import Foundation

/// A failure reported by the MariaDB client library or the server, with its error number.
struct MySQLFailure: Error, Sendable, CustomStringConvertible {
    var message: String
    /// The server's or client's error number (1045 access denied, 2003 cannot connect, ...).
    var code: UInt32

    var description: String { message }

    /// The server refused for lack of a privilege (retrying will not help).
    var isPermission: Bool { [1044, 1142, 1227, 1410, 1045].contains(code) }
    /// The client could not reach the server, or lost it.
    var isUnreachable: Bool { (2000..<3000).contains(code) }
}

/// Where a server is and who logs in.
struct MySQLParameters: Sendable {
    var host: String
    var port: Int
    var user: String
    var password: Secret?
    var database: String?
    var connectTimeoutSeconds: Int
}

/// Initialises the client library once, before any thread uses it (`mysql_init` alone is not thread-safe).
private let libraryInitialised: Bool = mysql_server_init(0, nil, nil) == 0

/// A blocking MariaDB/MySQL client connection; use it from one thread and let it go out of scope to close it.
final class MySQLConnection {
    private let handle: UnsafeMutablePointer<MYSQL>
    /// Strings that must never appear in messages (passwords).
    private var secrets: [String]

    private init(handle: UnsafeMutablePointer<MYSQL>, secrets: [String]) {
        self.handle = handle
        self.secrets = secrets
    }

    deinit { mysql_close(handle) }

    /// Opens a TCP connection, or throws the client's message (with any password redacted).
    static func connect(_ parameters: MySQLParameters) throws(MySQLFailure) -> MySQLConnection {
        guard libraryInitialised, let handle = mysql_init(nil) else {
            throw MySQLFailure(message: "cannot initialise the MariaDB client library", code: 2001)
        }
        var timeout = UInt32(max(1, parameters.connectTimeoutSeconds))
        var ioTimeout = UInt32(max(10, parameters.connectTimeoutSeconds * 6))
        var protocolTCP = MYSQL_PROTOCOL_TCP.rawValue
        mysql_options(handle, MYSQL_OPT_CONNECT_TIMEOUT, &timeout)
        mysql_options(handle, MYSQL_OPT_READ_TIMEOUT, &ioTimeout)
        mysql_options(handle, MYSQL_OPT_WRITE_TIMEOUT, &ioTimeout)
        mysql_options(handle, MYSQL_OPT_PROTOCOL, &protocolTCP)
        mysql_options(handle, MYSQL_SET_CHARSET_NAME, "utf8mb4")
        let secrets = [parameters.password?.value].compactMap { $0 }.filter { !$0.isEmpty }
        let connected = mysql_real_connect(
            handle, parameters.host, parameters.user, parameters.password?.value ?? "", parameters.database,
            UInt32(parameters.port), nil, 0)
        guard connected != nil else {
            let failure = MySQLFailure(
                message: redact(String(cString: mysql_error(handle)), secrets: secrets), code: mysql_errno(handle))
            mysql_close(handle)
            throw failure
        }
        return MySQLConnection(handle: handle, secrets: secrets)
    }

    /// Adds strings that must be redacted from every later message (a password about to be sent).
    func redacting(_ secret: String) { secrets.append(secret) }

    /// Runs statements that return no rows.
    func execute(_ sql: String) throws(MySQLFailure) {
        _ = try query(sql)
    }

    /// Runs one statement and returns its rows as text (NULL as nil).
    @discardableResult
    func query(_ sql: String) throws(MySQLFailure) -> [[String?]] {
        let bytes = Array(sql.utf8)
        let status = bytes.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                mysql_real_query(handle, $0, UInt(buffer.count))
            }
        }
        guard status == 0 else { throw failure() }
        guard let result = mysql_store_result(handle) else {
            if mysql_field_count(handle) != 0 { throw failure() }
            return []
        }
        defer { mysql_free_result(result) }
        let columns = Int(mysql_num_fields(result))
        var rows: [[String?]] = []
        while let row = mysql_fetch_row(result) {
            var values: [String?] = []
            for column in 0..<columns { values.append(row[column].map { String(cString: $0) }) }
            rows.append(values)
        }
        return rows
    }

    private func failure() -> MySQLFailure {
        MySQLFailure(
            message: Self.redact(String(cString: mysql_error(handle)), secrets: secrets), code: mysql_errno(handle))
    }

    /// Replaces every secret in `message` with `(sensitive)`.
    static func redact(_ message: String, secrets: [String]) -> String {
        var text = message.split(whereSeparator: \.isNewline).joined(separator: "; ")
        for secret in secrets where !secret.isEmpty {
            text = text.replacingOccurrences(of: secret, with: "(sensitive)")
        }
        return text
    }
}

/// A secret string that never prints itself.
struct Secret: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    var value: String

    init(_ value: String) { self.value = value }

    var description: String { "(sensitive)" }
    var debugDescription: String { "(sensitive)" }
    var customMirror: Mirror { Mirror(self, children: []) }
}

/// Quoting, name validation and password generation for MySQL/MariaDB.
enum MySQLSQL {
    /// The longest user name MySQL 8 accepts (MariaDB allows 80; the stricter limit keeps configs portable).
    static let maxNameLength = 32

    /// Whether `name` is a safe database and user name: `^[a-z_][a-z0-9_]{0,31}$`.
    static func isValidName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, bytes.count <= maxNameLength else { return false }
        guard isLower(first) || first == UInt8(ascii: "_") else { return false }
        return bytes.allSatisfy { isLower($0) || isDigit($0) || $0 == UInt8(ascii: "_") }
    }

    /// Whether `prefix` is a valid name prefix: `^[a-z_][a-z0-9_]*$`, shorter than a whole name.
    static func isValidPrefix(_ prefix: String) -> Bool {
        !prefix.isEmpty && prefix.utf8.count < maxNameLength && isValidName(prefix)
    }

    /// Whether `host` is a user host pattern dfe accepts: `%`, `localhost`, addresses, names, `%` wildcards.
    static func isValidUserHost(_ host: String) -> Bool {
        !host.isEmpty && host.utf8.count <= 255
            && host.utf8.allSatisfy {
                isLower($0) || isDigit($0) || (65...90).contains($0) || ".-_%:/".utf8.contains($0)
            }
    }

    /// A backtick-quoted identifier, with backticks doubled inside.
    static func identifier(_ name: String) -> String {
        "`" + name.replacingOccurrences(of: "`", with: "``") + "`"
    }

    /// A single-quoted string literal with `\` and `'` escaped (valid with or without NO_BACKSLASH_ESCAPES
    /// only for text without backslashes: every caller validates its text first).
    static func literal(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "''") + "'"
    }

    /// The database name as a GRANT pattern: `_` and `%` are wildcards there and must be escaped.
    static func grantPattern(_ name: String) -> String {
        identifier(name.replacingOccurrences(of: "_", with: "\\_").replacingOccurrences(of: "%", with: "\\%"))
    }

    /// `'user'@'host'`.
    static func account(_ user: String, _ host: String) -> String { literal(user) + "@" + literal(host) }

    /// Whether a recorded password can be sent as a literal: printable ASCII without quotes or backslashes.
    static func isSafePassword(_ password: String) -> Bool {
        password.utf8.count >= 16
            && password.utf8.allSatisfy {
                $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\\") && $0 != UInt8(ascii: "'")
                    && $0 != UInt8(ascii: "\"")
            }
    }

    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")

    /// A random alphanumeric password (unbiased: rejection sampling over the system generator).
    static func generatePassword(length: Int = 40) -> String {
        var generator = SystemRandomNumberGenerator()
        let limit = UInt8(256 - 256 % alphabet.count)
        var result = ""
        while result.count < length {
            let byte = UInt8.random(in: .min ... .max, using: &generator)
            if byte < limit { result.append(alphabet[Int(byte) % alphabet.count]) }
        }
        return result
    }

    private static func isLower(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z") }
    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
}
