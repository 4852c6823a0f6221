public import Foundation

/// The bearer token of `--api-token-file`: read once at start from a file only its owner can read.
public struct APIToken: Sendable {
    /// The token's bytes (the file's content without surrounding whitespace).
    let bytes: [UInt8]

    /// A token given directly (tests).
    public init(_ token: String) {
        bytes = Array(token.utf8)
    }

    /// Reads `url`; refuses a file whose mode is not 0600 (naming it and its mode), a missing or empty one.
    public init(file url: URL) throws(ControllerError) {
        let attributes: [FileAttributeKey: Any]
        do {
            attributes = try FileManager.default.attributesOfItem(atPath: url.path)
        } catch {
            throw ControllerError(description: "cannot read the API token file \(url.path): no such file")
        }
        let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue ?? 0
        guard mode & 0o777 == 0o600 else {
            throw ControllerError(
                description:
                    "the API token file \(url.path) has mode \(String(format: "%04o", mode & 0o7777)); it must be 0600 "
                    + "(chmod 600 \(url.path))")
        }
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw ControllerError(description: "cannot read the API token file \(url.path)")
        }
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else { throw ControllerError(description: "the API token file \(url.path) is empty") }
        self.init(token)
    }

    /// Whether an `Authorization` header value is `Bearer TOKEN`, compared in constant time.
    public func accepts(authorization: String?) -> Bool {
        guard let authorization else { return false }
        let prefix = "Bearer "
        guard authorization.count > prefix.count,
            authorization.prefix(prefix.count).lowercased() == prefix.lowercased()
        else { return false }
        return Self.constantTimeEqual(Array(authorization.utf8.dropFirst(prefix.utf8.count)), bytes)
    }

    /// Compares two byte strings in time that depends only on their lengths, never on where they differ.
    static func constantTimeEqual(_ left: [UInt8], _ right: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: left.count ^ right.count)
        let count = max(left.count, right.count)
        for index in 0..<count {
            let a = index < left.count ? left[index] : 0
            let b = index < right.count ? right[index] : 0
            difference |= a ^ b
        }
        return difference == 0 && left.count == right.count
    }
}

extension ListenAddress {
    /// Whether the address is a loopback one (127.0.0.0/8, ::1, localhost), which needs no token.
    public var isLoopback: Bool {
        let host = host.lowercased()
        if host == "localhost" || host == "::1" || host == "0:0:0:0:0:0:0:1" { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }
}
