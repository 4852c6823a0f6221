/// What a notification announces (the `events` of a `notifications:` entry).
public enum NotificationEvent: String, Sendable, Codable, CaseIterable, Hashable {
    /// An instance entered phase `failed` (not repeated on every retry).
    case failed
    /// A failed instance became ready again.
    case recovered
    /// An instance entered phase `drifted` (drift reported, not repaired).
    case drifted
    /// An instance was deleted because its manifest is gone.
    case pruned
    /// A snapshot the controller took failed.
    case snapshotFailed
    /// A health probe found an instance unhealthy.
    case unhealthy
}

/// One `notifications:` entry of `config/dfe.yaml`: where to POST which events, signed with which secret.
public struct NotificationTarget: Sendable, Hashable {
    /// The webhook's `http://` or `https://` URL.
    public var url: String
    public var events: Set<NotificationEvent>
    /// The file holding the HMAC secret (absolute, or resolved against the workspace root).
    public var secretFile: String

    public init(url: String, events: Set<NotificationEvent>, secretFile: String) {
        self.url = url
        self.events = events
        self.secretFile = secretFile
    }
}

/// HMAC-SHA256 (RFC 2104) over `SHA256`.
public enum HMACSHA256 {
    /// The 32-byte MAC of `message` under `key`.
    public static func mac(key: [UInt8], message: [UInt8]) -> [UInt8] {
        let blockSize = 64
        var key = key.count > blockSize ? SHA256.digest(key) : key
        key += [UInt8](repeating: 0, count: blockSize - key.count)
        let inner = SHA256.digest(key.map { $0 ^ 0x36 } + message)
        return SHA256.digest(key.map { $0 ^ 0x5c } + inner)
    }

    /// The MAC as lowercase hex.
    public static func hex(key: [UInt8], message: [UInt8]) -> String {
        SHA256.hexString(mac(key: key, message: message))
    }
}
