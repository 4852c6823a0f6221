import Foundation

/// Quoting, name validation and password generation for the PostgreSQL driver.
enum SQL {
    /// Whether `name` is a safe PostgreSQL name: `^[a-z_][a-z0-9_]{0,62}$`.
    static func isValidName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, bytes.count <= 63 else { return false }
        guard isLower(first) || first == UInt8(ascii: "_") else { return false }
        return bytes.allSatisfy { isLower($0) || isDigit($0) || $0 == UInt8(ascii: "_") }
    }

    /// Whether `prefix` is a valid name prefix: `^[a-z_][a-z0-9_]*$`.
    static func isValidPrefix(_ prefix: String) -> Bool {
        !prefix.isEmpty && prefix.utf8.count < 63 && isValidName(prefix)
    }

    /// A double-quoted identifier, with `"` doubled inside.
    static func identifier(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// A single-quoted literal, with `'` doubled inside (assumes `standard_conforming_strings`).
    static func literal(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "''") + "'"
    }

    /// Whether a password can be written as a plain literal: printable ASCII without backslashes.
    static func isSafePassword(_ password: String) -> Bool {
        password.utf8.count >= 16
            && password.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\\") }
    }

    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")

    /// A random alphanumeric password from `/dev/urandom` (unbiased: rejection sampling).
    static func generatePassword(length: Int = 40) -> String {
        var result = ""
        let limit = UInt8(256 - 256 % alphabet.count)  // 248: a multiple of 62
        while result.count < length {
            for byte in randomBytes(64) where byte < limit && result.count < length {
                result.append(alphabet[Int(byte) % alphabet.count])
            }
        }
        return result
    }

    /// `count` random bytes from `/dev/urandom`, or from the system generator when it cannot be read.
    private static func randomBytes(_ count: Int) -> [UInt8] {
        if let handle = FileHandle(forReadingAtPath: "/dev/urandom") {
            defer { try? handle.close() }
            if let data = try? handle.read(upToCount: count), data.count == count {
                return Array(data)
            }
        }
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }

    private static func isLower(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z") }
    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
}
